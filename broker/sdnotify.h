/*
 * sdnotify.h - systemd's readiness notification, without libsystemd.
 *
 * A service of Type=notify tells systemd it is ready by sending one datagram, "READY=1", to
 * the AF_UNIX socket named by $NOTIFY_SOCKET (sd_notify(3), "the notification protocol"):
 * a path, or an abstract-namespace name when it starts with '@'. Nothing else is needed for
 * readiness, so the broker speaks it itself and links no library of systemd.
 */
#ifndef LT_BROKER_SDNOTIFY_H
#define LT_BROKER_SDNOTIFY_H

#include "err.h"

/* Send state (e.g. "READY=1", newline-separated assignments) to $NOTIFY_SOCKET. Without
 * $NOTIFY_SOCKET (not started by systemd) nothing is sent and LT_OK is returned.
 * LT_EINVAL: $NOTIFY_SOCKET is not a usable AF_UNIX address; LT_EIO: the send failed. The
 * reason goes to why. Any thread; blocks at most for one local datagram. */
lt_err lt_sd_notify(const char *state, lt_why *why);

#endif

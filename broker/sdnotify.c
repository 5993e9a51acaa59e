/*
 * sdnotify.c - one datagram to $NOTIFY_SOCKET (see sdnotify.h).
 *
 *   $NOTIFY_SOCKET = "/run/systemd/notify"   path socket: sun_path = the string
 *                  = "@name"                 abstract socket: sun_path = "\0name",
 *                                            address length counts only the bytes used
 * The message is the state text, no terminating NUL.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

lt_err lt_sd_notify(const char *state, lt_why *why)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !name[0])
        return LT_OK;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len < 2 || len > sizeof sa.sun_path ||
        (name[0] == '/' && len == sizeof sa.sun_path)) /* a path needs its NUL */
        return lt_fail(why, LT_EINVAL, "NOTIFY_SOCKET=%s: not an AF_UNIX socket name", name);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                  (name[0] == '/' ? 1 : 0));

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lt_fail(why, LT_EIO, "NOTIFY_SOCKET: socket: %s", strerror(errno));
    lt_err e = LT_OK;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    if (n < 0 || (size_t)n != strlen(state))
        e = lt_fail(why, LT_EIO, "NOTIFY_SOCKET=%s: send: %s", name,
                    n < 0 ? strerror(errno) : "short write");
    close(fd);
    return e;
}

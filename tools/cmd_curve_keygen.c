/*
 * cmd_curve_keygen.c - `lienthong curve-keygen FILE`: a CURVE key pair for ZeroMQ
 * encryption (docs/network.md). The secret key goes to FILE (mode 0600, one line of Z85);
 * the public key is printed, to be listed in the broker's config next to the agency it
 * belongs to (curve_clients, or peers[].curve_key). `--public FILE` prints the public key of
 * an existing secret key file.
 */
#include "cmd_decls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

const char lt_cmd_curve_keygen_summary[] =
    "make a CURVE key pair (secret to a file, public printed) for encrypted links";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong curve-keygen FILE\n"
            "       lienthong curve-keygen --public FILE\n\n"
            "%s.\n\n"
            "Writes the secret key to FILE (new file, mode 0600, 40 characters of Z85) and\n"
            "prints the public key. With --public, prints the public key of FILE's secret key.\n"
            "Give the public key to the broker's operator (curve_clients, peers[].curve_key).\n",
            lt_cmd_curve_keygen_summary);
}

static int print_public(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "lienthong curve-keygen: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char sec[128] = "", pub[41];
    if (!fgets(sec, sizeof sec, f))
        sec[0] = '\0';
    fclose(f);
    sec[strcspn(sec, "\r\n")] = '\0';
    if (strlen(sec) != 40 || zmq_curve_public(pub, sec) != 0) {
        fprintf(stderr, "lienthong curve-keygen: %s: not a CURVE secret key (40 characters "
                        "of Z85 on the first line)\n", path);
        return 1;
    }
    memset(sec, 0, sizeof sec);
    printf("%s\n", pub);
    return 0;
}

int lt_cmd_curve_keygen(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--public") == 0)
        return print_public(argv[2]);
    if (argc != 2 || argv[1][0] == '-') {
        usage(stderr);
        return 2;
    }
    char pub[41], sec[41];
    if (!zmq_has("curve") || zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "lienthong curve-keygen: this libzmq cannot make CURVE keys: %s\n",
                zmq_strerror(zmq_errno()));
        return 1;
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "lienthong curve-keygen: %s: %s (never overwritten)\n", argv[1],
                strerror(errno));
        return 1;
    }
    int ok = dprintf(fd, "%s\n", sec) == 41;
    ok = close(fd) == 0 && ok;
    memset(sec, 0, sizeof sec);
    if (!ok) {
        fprintf(stderr, "lienthong curve-keygen: cannot write %s\n", argv[1]);
        return 1;
    }
    printf("%s\n", pub);
    return 0;
}

/*
 * replay_main.c - runs a fuzz target over every file of its corpus directory.
 *
 * Linked with each tests/fuzz/fuzz_<name>.c so ctest replays the corpus in every build
 * (plain and ASan/UBSan) without libFuzzer. An empty or missing corpus is a failure: a
 * target nobody feeds tests nothing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || st.st_size > (64 << 20)) {
        fprintf(stderr, "replay: %s: unreadable or larger than 64 MiB\n", path);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "replay: no corpus at %s\n", argv[1]);
        return 1;
    }
    int files = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        if (run_file(path) != 0)
            bad++;
        files++;
    }
    closedir(d);
    printf("replay: %d inputs from %s, %d unreadable\n", files, argv[1], bad);
    return (files == 0 || bad) ? 1 : 0;
}

#include "eff_process.h"

#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 256

enum { FREE = 0, CLAIMED = 1, READY = 2 };

static _Atomic int slot_state[SLOTS];
static char slot_path[SLOTS][PATH_MAX];

int eff_partial_register(const char *path) {
    size_t length = strlen(path);
    if (length >= PATH_MAX) return -1;
    for (int i = 0; i < SLOTS; i++) {
        int expected = FREE;
        if (atomic_compare_exchange_strong(&slot_state[i], &expected, CLAIMED)) {
            memcpy(slot_path[i], path, length + 1);
            atomic_store(&slot_state[i], READY);
            return i;
        }
    }
    return -1;
}

void eff_partial_unregister(int slot) {
    if (slot >= 0 && slot < SLOTS) atomic_store(&slot_state[slot], FREE);
}

void eff_partial_remove_all(void) {
    for (int i = 0; i < SLOTS; i++) {
        if (atomic_load(&slot_state[i]) == READY) unlink(slot_path[i]);
    }
}

static void on_interrupt(int sig) {
    eff_partial_remove_all();
    // End by the same signal, default action: the parent sees "killed by SIGINT" (status 130
    // in a shell), so loops and job schedulers stop as they would for any program.
    signal(sig, SIG_DFL);
    raise(sig);
}

void eff_install_interrupt_cleanup(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT);
    sigaddset(&action.sa_mask, SIGTERM);
    sigaddset(&action.sa_mask, SIGHUP);
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction old;
        // A signal the parent set to be ignored (nohup, background jobs) stays ignored.
        if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(signals[i], &action, NULL);
    }
}

void eff_line_buffered_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

long eff_heap_free_bytes(void) {
#if defined(__GLIBC__)
    return (long)mallinfo2().fordblks;
#else
    return 0;
#endif
}

#ifndef EFF_PROCESS_H
#define EFF_PROCESS_H

/// Files being written (temporary files before their rename), kept where a signal handler can
/// reach them: SIGINT, SIGTERM and SIGHUP remove them before the process ends.

/// Records `path` as being written; returns its slot, or -1 when all slots are taken (the file
/// is then written unrecorded).
int eff_partial_register(const char *path);
/// The file of `slot` is renamed or removed: forget it.
void eff_partial_unregister(int slot);
/// Removes every recorded file (async-signal-safe).
void eff_partial_remove_all(void);
/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the recorded files, then end
/// the process by the same signal (so the shell sees 130 / 143 / 129).
void eff_install_interrupt_cleanup(void);

/// Makes standard output line-buffered, also when it is a file or a pipe.
void eff_line_buffered_stdout(void);

/// Bytes malloc holds freed, ready for reuse by this process (glibc mallinfo2's fordblks).
long eff_heap_free_bytes(void);

#endif

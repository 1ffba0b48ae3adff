import CProcessShim

/// Standard output as a command-line tool writes it: each line goes out whole when it is
/// printed, also into a file or a pipe (a batch job's log), so a killed run's log shows what was
/// done and lines written to standard error never land inside a half-flushed one.
public enum StandardOutput {
    public static func flushEveryLine() { eff_line_buffered_stdout() }
}

/// Path arithmetic on plain strings, split on "/": the last component, the parent, the name
/// without its extension, joining. Foundation's `NSString` path methods are not used: on Linux,
/// `deletingLastPathComponent` traps (signal 4) on some one-character paths such as "x" or "-".
public enum PathText {
    /// The last component: `a/b.png` → `b.png`, `a/b/` → `b`, `/` → `/`, `x` → `x`.
    public static func lastComponent(_ path: String) -> String {
        let trimmed = trimmingTrailingSlashes(path)
        if trimmed == "/" { return "/" }
        guard let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// The folder holding the last component: `a/b.png` → `a`, `/a` → `/`, `x` → "" (the
    /// current folder), `a/b/` → `a`.
    public static func parent(_ path: String) -> String {
        let trimmed = trimmingTrailingSlashes(path)
        guard trimmed != "/", let slash = trimmed.lastIndex(of: "/") else { return trimmed == "/" ? "/" : "" }
        let head = trimmingTrailingSlashes(String(trimmed[..<slash]))
        return head.isEmpty ? "/" : head
    }

    /// The path without the last component's extension: `a/b.tar.gz` → `a/b.tar`, `a.b/c` →
    /// `a.b/c`, `.hidden` → `.hidden`, `x.` → `x`.
    public static func deletingExtension(_ path: String) -> String {
        let trimmed = trimmingTrailingSlashes(path)
        let name = lastComponent(trimmed)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return trimmed }
        let extensionLength = name.distance(from: dot, to: name.endIndex)
        return String(trimmed.dropLast(extensionLength))
    }

    /// `folder/name` with one slash between ("" joins to `name` alone).
    public static func join(_ folder: String, _ name: String) -> String {
        if folder.isEmpty { return name }
        return folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    private static func trimmingTrailingSlashes(_ path: String) -> String {
        var text = Substring(path)
        while text.count > 1 && text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension PathText {
    /// Why `path` cannot be read as a file's bytes — "no such file", "it is a folder", "it is a
    /// FIFO (named pipe)", "a symbolic link loop", "the name is too long", ... — or nil for a
    /// regular file (symbolic links followed). Checked before reading, so a FIFO or a device never
    /// blocks a run and a message says what the path is rather than guessing.
    public static func notARegularFile(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            switch errno {
            case ENOENT: return "no such file"
            case ENOTDIR: return "no such file (a part of the path is not a folder)"
            case ELOOP: return "a symbolic link loop"
            case ENAMETOOLONG: return "the name is too long"
            case EACCES: return "permission denied"
            default: return String(cString: strerror(errno))
            }
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "it is a folder"
        case S_IFIFO: return "it is a FIFO (named pipe), not a file"
        case S_IFSOCK: return "it is a socket, not a file"
        case S_IFCHR, S_IFBLK: return "it is a device, not a file"
        default: return "not a regular file"
        }
    }

    /// What `path` is when it exists and is not a regular file ("it is a folder", "it is a FIFO
    /// (named pipe), not a file"); nil when it is a file or does not exist.
    public static func existingNonFile(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return notARegularFile(path)
    }

    /// Why writing `path` failed with `errno`, naming what the path or its folder is instead of
    /// guessing.
    public static func writeFailure(_ path: String, errno code: Int32) -> String {
        if let problem = existingNonFile(path) { return "cannot write: \(problem)" }
        let folder = parent(path).isEmpty ? "." : parent(path)
        if let problem = notARegularFile(folder), problem != "it is a folder" { return "cannot write into \(folder): \(problem)" }
        switch code {
        case EACCES, EPERM: return "cannot write: permission denied"
        case ENOSPC: return "cannot write: the disk is full"
        case EDQUOT: return "cannot write: disk quota exceeded"
        case EROFS: return "cannot write: read-only file system"
        default: return "cannot write (\(String(cString: strerror(code))))"
        }
    }
}

extension String {
    /// The text of a C buffer up to its first NUL (a C shim's error message), as UTF-8 with
    /// invalid bytes replaced.
    public init(cBuffer buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

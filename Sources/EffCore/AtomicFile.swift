import CProcessShim
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Writing files so that a reader never sees half of one: each file is written to a temporary
/// file beside it — `.NAME.effdense-partial-HOST-PID-N`, recognisable and unique — and renamed
/// over its target when complete. Temporary files in flight are removed when SIGINT, SIGTERM or
/// SIGHUP ends the process (`installInterruptCleanup`); those a SIGKILL leaves behind are
/// removed by `sweepStale` at the start of the next run writing to that folder.
public enum AtomicFile {
    /// The part of a temporary file's name that marks it as effdense's.
    public static let partialMarker = ".effdense-partial-"

    /// Removes the temporary files in flight when an interrupt or termination signal arrives,
    /// then lets the signal end the process (status 130 for SIGINT, 143 for SIGTERM).
    public static func installInterruptCleanup() { eff_install_interrupt_cleanup() }

    /// Removes the temporary files in flight now (before an exit that skips the handlers).
    public static func removeFilesInFlight() { eff_partial_remove_all() }

    /// Writes `data` to `path` through a temporary file and a rename.
    public static func write(_ data: Data, to path: String) throws {
        try write([(data, path)])
    }

    /// Writes several files all or nothing: every one goes to its temporary file first; only when
    /// all are written are they renamed onto their targets. A failure removes every temporary
    /// file and leaves the targets as they were. The error is an `AtomicFileError` naming the file.
    public static func write(_ files: [(data: Data, path: String)]) throws {
        var written: [(temporary: String, path: String, slot: Int32)] = []
        defer {
            for file in written {
                unlink(file.temporary)
                eff_partial_unregister(file.slot)
            }
        }
        for (_, path) in files {
            if let problem = PathText.existingNonFile(path) {
                throw AtomicFileError(path: path, problem: "cannot write: \(problem)")
            }
        }
        for (data, path) in files {
            let temporary = temporaryName(for: path)
            let slot = eff_partial_register(temporary)
            written.append((temporary, path, slot))
            try writeAll(data, to: temporary, reportedAs: path)
        }
        if pauseBeforeRename > 0 { usleep(pauseBeforeRename) }
        for (index, file) in written.enumerated() where rename(file.temporary, file.path) != 0 {
            let reason = String(cString: strerror(errno))
            // Files renamed before this one stay (a rename within a folder fails only when the
            // folder changed under us); the rest are removed by the deferred block.
            written.removeFirst(index)
            throw AtomicFileError(path: file.path, problem: "cannot rename the finished file onto it (\(reason))")
        }
        for file in written { eff_partial_unregister(file.slot) }
        written = []
    }

    /// A file written in pieces (a large TIFF) under its temporary name: `commit` renames it onto
    /// its target, `abandon` removes it; an interrupt removes it meanwhile.
    public final class Pending: @unchecked Sendable {
        public let path: String
        /// Where the pieces go until `commit`.
        public let temporaryPath: String
        private var slot: Int32
        private var open = true

        public init(for path: String) throws {
            if let problem = PathText.existingNonFile(path) { throw AtomicFileError(path: path, problem: "cannot write: \(problem)") }
            self.path = path
            temporaryPath = AtomicFile.temporaryName(for: path)
            slot = eff_partial_register(temporaryPath)
        }

        public func commit() throws {
            guard open else { return }
            open = false
            defer { eff_partial_unregister(slot) }
            guard rename(temporaryPath, path) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(temporaryPath)
                throw AtomicFileError(path: path, problem: "cannot rename the finished file onto it (\(reason))")
            }
        }

        public func abandon() {
            guard open else { return }
            open = false
            unlink(temporaryPath)
            eff_partial_unregister(slot)
        }

        deinit { abandon() }
    }

    /// Removes the temporary files of runs that are gone from `folder`: those of this machine
    /// whose process no longer exists, and any older than an hour (another machine's, on a
    /// shared folder). Quietly does nothing when the folder cannot be listed.
    public static func sweepStale(in folder: String) {
        let directory = folder.isEmpty ? "." : folder
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let host = hostName
        for name in names where name.hasPrefix(".") && name.contains(partialMarker) {
            guard let markerRange = name.range(of: partialMarker, options: .backwards) else { continue }
            let fields = name[markerRange.upperBound...].split(separator: "-")
            guard fields.count >= 3, let pid = Int32(fields[fields.count - 2]) else { continue }
            let writerHost = fields.dropLast(2).joined(separator: "-")
            let path = PathText.join(directory, name)
            var info = stat()
            let age = stat(path, &info) == 0 ? time(nil) - info.st_mtim.tv_sec : 0
            let writerGone = writerHost == host && pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
            if writerGone || age > 3600 { unlink(path) }
        }
    }

    private static let counter = Atomic<Int>(0)

    /// Test hook: `EFFDENSE_TEST_PAUSE_BEFORE_RENAME_MS` holds every finished temporary file that
    /// long before its rename, so the signal tests can catch files in flight.
    private static let pauseBeforeRename: UInt32 = {
        let text = ProcessInfo.processInfo.environment["EFFDENSE_TEST_PAUSE_BEFORE_RENAME_MS"] ?? ""
        return UInt32(min(max(Int(text) ?? 0, 0), 10_000)) * 1000
    }()

    static func temporaryName(for path: String) -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        let name = PathText.lastComponent(path)
        return PathText.join(PathText.parent(path), ".\(name)\(partialMarker)\(hostName)-\(getpid())-\(n)")
    }

    /// This machine's name as temporary files carry it ("host" if unknown).
    public static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "host" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let name = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "/", with: "_")
        return name.isEmpty ? "host" : name
    }()

    private static func writeAll(_ data: Data, to temporary: String, reportedAs path: String) throws {
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            throw AtomicFileError(path: path, problem: PathText.writeFailure(path, errno: errno))
        }
        defer { close(descriptor) }
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let count = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFileError(path: path, problem: PathText.writeFailure(path, errno: errno))
                }
                offset += count
            }
        }
    }
}

/// A file that could not be written, and why.
public struct AtomicFileError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "\(path): \(problem)" }
}

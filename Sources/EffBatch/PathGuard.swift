import EffCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one place that keeps a run's outputs off its inputs: every file the run reads (pictures,
/// checkpoint, config, label list, input list) is recorded before anything is written, and every
/// path it is about to write (pictures, masks, overlays, JSON) is checked against them and
/// against the other outputs. Files are compared by device and inode when they exist (so a
/// symbolic or hard link to an input is caught), else by canonical path.
public final class PathGuard: @unchecked Sendable {
    /// A file as the file system knows it.
    struct Identity: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    private let lock = NSLock()
    private var readByIdentity: [Identity: String] = [:]
    private var readByPath: [String: String] = [:]
    private var writes: [String: String] = [:]

    public init() {}

    /// Records a file the run reads; `role` names it in messages ("the --weights checkpoint").
    public func reads(_ path: String, as role: String) {
        let canonical = InputCollector.canonical(path)
        let identity = Self.identity(of: path)
        lock.withLock {
            if let identity, readByIdentity[identity] == nil { readByIdentity[identity] = "\(role) \(path)" }
            if readByPath[canonical] == nil { readByPath[canonical] = "\(role) \(path)" }
        }
    }

    /// Checks that `path` (written as `role`, e.g. "the JSON output") is none of the files read
    /// and not already claimed by another output, and claims it. `OutputClash` otherwise.
    public func writes(_ path: String, as role: String) throws {
        let canonical = InputCollector.canonical(path)
        let identity = Self.identity(of: path)
        try lock.withLock {
            if let identity, let input = readByIdentity[identity] {
                throw OutputClash(path: path, role: role, other: input, why: "it is")
            }
            if let input = readByPath[canonical] {
                throw OutputClash(path: path, role: role, other: input, why: "it is")
            }
            if let other = writes[canonical], other != role {
                throw OutputClash(path: path, role: role, other: other, why: "it is also")
            }
            writes[canonical] = role
        }
    }

    /// Device and inode of the file `path` names (links followed), nil when there is none.
    static func identity(of path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}

/// An output that would land on an input or on another output.
public struct OutputClash: Error, CustomStringConvertible {
    public let path: String
    public let role: String
    public let other: String
    public let why: String

    public var description: String { "\(path): refusing to write \(role) there: \(why) \(other)" }
}

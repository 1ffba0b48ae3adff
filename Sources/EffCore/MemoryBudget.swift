import CProcessShim
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Memory the process may still use, and reservations against it, so that work whose memory
/// can be estimated up front (a whole-picture segmentation) is refused with a message instead of
/// failing halfway. Several pictures in flight reserve from the same budget: one whose estimate
/// fits only once the others finish waits for them.
public enum MemoryBudget {
    /// Bytes the process can still allocate: the least of the address-space limit (RLIMIT_AS,
    /// less the address space in use, not counting freed heap memory that malloc keeps), the
    /// cgroup v2 memory limit (less the group's usage) and the system's available memory.
    /// Reservations are not subtracted.
    public static func availableBytes() -> Int {
        var candidates: [Int] = []
        // Freed memory malloc keeps for the next picture (TensorMemory.keepFreedMemory) is in use
        // for the system but free for this process.
        let freeInHeap = eff_heap_free_bytes()
        var limit = rlimit()
        if getrlimit(RLIMIT_AS_VALUE, &limit) == 0, limit.rlim_cur != rlim_t.max,
           let virtualSize = procStatusKilobytes("VmSize") {
            candidates.append(Int(clamping: limit.rlim_cur) - max(0, virtualSize * 1024 - freeInHeap))
        }
        if let maximum = cgroupBytes("memory.max"), let current = cgroupBytes("memory.current") {
            candidates.append(maximum - current + freeInHeap)
        }
        if let available = meminfoKilobytes("MemAvailable") { candidates.append(available * 1024 + freeInHeap) }
        return max(0, candidates.min() ?? Int.max)
    }

    private static let lock = NSCondition()
    nonisolated(unsafe) private static var reserved = 0

    /// Runs `body` with `bytes` reserved: throws `MemoryShortage` when `bytes` exceeds what the
    /// process can have at all; waits while other reservations leave too little.
    public static func withReservation<Result>(_ bytes: Int, for work: String, _ body: () throws -> Result) throws -> Result {
        lock.lock()
        while true {
            let available = availableBytes()
            // What other reservations hold is not yet allocated by them (or only partly): count
            // it against this one, and wait for it when this one would fit without it.
            if bytes > available {
                lock.unlock()
                throw MemoryShortage(work: work, neededBytes: bytes, availableBytes: available)
            }
            if reserved == 0 || bytes <= available - reserved { break }
            lock.wait()
        }
        reserved += bytes
        lock.unlock()
        defer {
            lock.lock()
            reserved -= bytes
            lock.broadcast()
            lock.unlock()
        }
        return try body()
    }

    static func procStatusKilobytes(_ field: String) -> Int? {
        keyValueKilobytes(file: "/proc/self/status", field: field)
    }

    static func meminfoKilobytes(_ field: String) -> Int? {
        keyValueKilobytes(file: "/proc/meminfo", field: field)
    }

    private static func keyValueKilobytes(file: String, field: String) -> Int? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    /// A cgroup v2 file of this process's group holding a byte count ("max": no limit).
    static func cgroupBytes(_ name: String) -> Int? {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
              let line = membership.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        let group = line.dropFirst(3)
        let path = "/sys/fs/cgroup" + (group == "/" ? "" : group) + "/" + name
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static var RLIMIT_AS_VALUE: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_AS.rawValue) }
}

/// Work refused up front because its memory estimate exceeds what the process can have.
public struct MemoryShortage: Error, CustomStringConvertible {
    public let work: String
    public let neededBytes: Int
    public let availableBytes: Int
    /// For a picture's network: the largest longer side (in pixels) that would fit, when one does.
    public var fittingLongerSide: Int?

    public init(work: String, neededBytes: Int, availableBytes: Int, fittingLongerSide: Int? = nil) {
        self.work = work
        self.neededBytes = neededBytes
        self.availableBytes = availableBytes
        self.fittingLongerSide = fittingLongerSide
    }

    public var description: String {
        "\(work) needs about \(Self.text(neededBytes)) of memory, \(Self.text(availableBytes)) available"
    }

    /// "1.4 GB", "350 MB".
    public static func text(_ bytes: Int) -> String {
        bytes >= 1 << 30 ? String(format: "%.1f GB", Double(bytes) / Double(1 << 30)) : "\(bytes >> 20) MB"
    }
}

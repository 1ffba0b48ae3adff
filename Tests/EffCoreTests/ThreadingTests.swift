@testable import EffCore
import Foundation
import Testing

@Suite struct ThreadingTests {
    @Test func cgroupQuotaBoundsTheThreadCount() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cpu.max.\(getpid())")
        defer { try? FileManager.default.removeItem(at: file) }
        for (text, expected) in [("max 100000\n", nil), ("150000 100000\n", 2), ("50000 100000\n", 1), ("200000 100000", 2), ("garbage", nil)] as [(String, Int?)] {
            try text.write(to: file, atomically: true, encoding: .utf8)
            #expect(System.cgroupCPUQuota(file.path) == expected, "\(text)")
        }
        #expect(System.cgroupCPUQuota("/nonexistent/cpu.max") == nil)
    }

    /// (Does not set the global count: other suites run kernels at the same time.)
    @Test func aThreadLimitAppliesInsideItsScope() throws {
        #expect(Threading.withThreadLimit(1) { Threading.threadCount } == 1)
        // A kernel split under the limit runs on the calling thread only.
        let caller = pthread_self()
        let threads = LockedThreads()
        Threading.withThreadLimit(1) {
            Threading.parallelFor(64) { _ in threads.add(pthread_self()) }
        }
        #expect(threads.all.allSatisfy { pthread_equal($0, caller) != 0 } && !threads.all.isEmpty)
    }

    /// The ranges a parallel loop hands out cover every item exactly once, whoever takes them:
    /// few and many items, a minimum per thread, and a count beyond the 32-bit shares (items in
    /// groups).
    @Test func parallelForCoversEveryItemOnce() throws {
        for (count, minimum) in [(1, 1), (7, 1), (1000, 1), (1000, 300), (5_000_000_000, 32768)] {
            let ranges = LockedRanges()
            Threading.withThreadLimit(4) {
                Threading.parallelFor(count, minimumPerThread: minimum) { ranges.add($0) }
            }
            let sorted = ranges.all.sorted { $0.lowerBound < $1.lowerBound }
            #expect(sorted.first?.lowerBound == 0 && sorted.last?.upperBound == count, "\(count)")
            #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound } && sorted.allSatisfy { !$0.isEmpty },
                    "\(count): \(sorted.prefix(8))")
        }
    }
}

final class LockedRanges: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Range<Int>] = []
    var all: [Range<Int>] { lock.withLock { items } }
    func add(_ range: Range<Int>) { lock.withLock { items.append(range) } }
}

final class LockedThreads: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [pthread_t] = []
    var all: [pthread_t] { lock.withLock { items } }
    func add(_ thread: pthread_t) { lock.withLock { items.append(thread) } }
}

import CBLAS
import Dispatch
import Foundation
import Synchronization

/// The number of threads kernels use: all cores unless set. Setting it also sets OpenBLAS's.
public enum Threading {
    private static let configured = Atomic<Int>(0)

    /// Threads the kernels split work over (at least 1).
    public static var threadCount: Int {
        singleThreadedBLAS
        let value = configured.load(ordering: .relaxed)
        return value > 0 ? value : defaultThreadCount
    }

    /// All the cores this process may use.
    public static var defaultThreadCount: Int { max(1, System.activeProcessorCount) }

    /// Sets the thread count for the kernels; `nil` restores the default (all cores). OpenBLAS
    /// itself always runs single-threaded: the kernels split GEMMs over these threads, so one
    /// pool of threads does all the work (two pools would spin against each other).
    public static func setThreadCount(_ count: Int?) {
        let value = max(1, count ?? defaultThreadCount)
        configured.store(count == nil ? 0 : value, ordering: .relaxed)
        singleThreadedBLAS
    }

    /// OpenBLAS to one thread, once.
    static let singleThreadedBLAS: Void = openblas_set_num_threads(1)

    /// Runs `body` over `0..<count` split into contiguous ranges, one per thread. `body` must only
    /// write to memory no other range writes.
    public static func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if threads <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let start = count * t / threads
                let end = count * (t + 1) / threads
                if start < end { box.value(start..<end) }
            }
        }
    }
}

/// Wraps a value the compiler cannot prove Sendable, where the caller guarantees race-freedom.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

enum System {
    /// Cores this process may run on (honours CPU affinity and container limits).
    static var activeProcessorCount: Int { ProcessInfo.processInfo.activeProcessorCount }
}

import CBLAS
import CKernels
import Dispatch
import Foundation
import Synchronization

/// The number of threads kernels use: all cores unless set. Setting it also sets OpenBLAS's.
public enum Threading {
    private static let configured = Atomic<Int>(0)

    /// Threads the kernels split work over (at least 1): on a thread inside `withThreadLimit`,
    /// at most that limit.
    public static var threadCount: Int {
        singleThreadedBLAS
        let value = configured.load(ordering: .relaxed)
        let all = value > 0 ? value : defaultThreadCount
        return limit.map { min($0, all) } ?? all
    }

    @TaskLocal private static var limit: Int?

    /// Runs `body` with the kernels it calls (on this thread) split over at most `count`
    /// threads: several pictures processed at once each take a share of the cores.
    public static func withThreadLimit<Result>(_ count: Int, _ body: () throws -> Result) rethrows -> Result {
        try $limit.withValue(max(1, count), operation: body)
    }

    /// All the cores this process may use.
    public static var defaultThreadCount: Int { max(1, System.activeProcessorCount) }

    /// The most threads worth asking for: 4 x the usable cores (more only adds switching, and
    /// thousands would hit the process's thread limit).
    public static var maximumThreadCount: Int { 4 * defaultThreadCount }

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

    /// Runs `body` over `0..<count` split into contiguous ranges. Each thread starts on its own
    /// share of the items (the same share for the same count, so a layer finds the rows it wrote
    /// in its cache) and then takes ranges from the back of the others' shares, so a thread that
    /// the system pauses — other work shares the cores in a batch run — does not hold the others
    /// up. With `minimumPerThread`, fewer threads run when there are fewer items per thread, and
    /// no range is smaller than that (but for a share's last). `body` must only write to memory
    /// no other range writes.
    public static func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        // The shares are 32-bit: beyond that, items go in groups.
        let most = Int(UInt32.max)
        if count > most {
            let group = (count + most - 1) / most
            parallelFor((count + group - 1) / group, minimumPerThread: max(1, minimumPerThread / group)) { groups in
                body(groups.lowerBound * group..<min(count, groups.upperBound * group))
            }
            return
        }
        let threads = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if threads <= 1 {
            body(0..<count)
            return
        }
        // Thread t starts on its own share of the items and then helps the others (see
        // eff_ranges_next); the state is a few cache lines on this thread's stack.
        let grain = max(1, minimumPerThread)
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: threads * Int(EFF_RANGES_WORDS)) { state in
            guard let ranges = state.baseAddress else { return }
            eff_ranges_init(ranges, count, threads)
            let chunk: (Int) -> Void = { thread in
                var start = 0, end = 0
                while eff_ranges_next(ranges, threads, thread, grain, &start, &end) != 0 { body(start..<end) }
            }
            // The pool serves one caller at a time; a second caller meanwhile (another thread,
            // or a nested parallelFor) takes Dispatch's pool instead.
            if WorkerPool.shared.tryRun(threads, chunk) { return }
            withoutActuallyEscaping(chunk) { chunk in
                let box = UncheckedSendable(chunk)
                DispatchQueue.concurrentPerform(iterations: threads) { box.value($0) }
            }
        }
    }
}

/// Threads that stay ready between kernels. Handing work to a sleeping thread (a futex wake, then
/// the scheduler) costs tens of microseconds, and a forward pass makes hundreds of hand-offs, so
/// after each task a worker spins for a short while before it sleeps again.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long a worker keeps looking for the next task before sleeping (loop iterations; past
    /// the first 2000 each one yields the core to any other runnable thread).
    private static let spinIterations = 20_000

    private let busy = Atomic<Bool>(false)
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let condition = NSCondition()
    private var sleepers = 0
    private var workerCount = 0
    /// The current task and how many threads share it: written before `generation` is bumped
    /// (release), read by workers after they see the new generation (acquire).
    private var task: ((Int) -> Void)?
    private var taskThreads = 0

    /// Runs `body(0)` here and `body(1..<threads)` on the workers, returning when all are done;
    /// false (nothing run) when the pool is serving another caller.
    func tryRun(_ threads: Int, _ body: (Int) -> Void) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        startWorkers(upTo: threads - 1)
        withoutActuallyEscaping(body) { body in
            task = body
            taskThreads = threads
            // Every worker acknowledges every task (those beyond `threads` without running it),
            // so none can still be reading this task's parameters when the next one is set.
            remaining.store(workerCount, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            condition.lock()
            if sleepers > 0 { condition.broadcast() }
            condition.unlock()
            body(0)
            // Spin, then yield: when other threads share the cores (a batch run's decoding and
            // writing), a waiting worker may need this core to finish.
            var spins = 0
            while remaining.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 2_000 { sched_yield() }
            }
            task = nil
        }
        return true
    }

    /// Set when the system refused a thread (a process or thread limit): the pool works with
    /// the workers it has — the tasks' ranges are taken on demand, so fewer threads still do all
    /// the work — instead of waiting forever for a worker that never started.
    private var cannotGrow = false

    /// A worker's entry point, handed through pthread_create's context pointer.
    private final class WorkerStart {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    private func startWorkers(upTo count: Int) {
        while workerCount < count && !cannotGrow {
            let index = workerCount + 1, start = generation.load(ordering: .acquiring)
            let context = Unmanaged.passRetained(WorkerStart { [self] in work(index: index, seen: start) }).toOpaque()
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 1 << 20)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            var thread = pthread_t()
            let status = pthread_create(&thread, &attributes, { context in
                if let context { Unmanaged<WorkerStart>.fromOpaque(context).takeRetainedValue().run() }
                return nil
            }, context)
            pthread_attr_destroy(&attributes)
            guard status == 0 else {
                Unmanaged<WorkerStart>.fromOpaque(context).release()
                cannotGrow = true
                return
            }
            workerCount = index
        }
    }

    private func work(index: Int, seen start: Int) {
        var seen = start
        while true {
            var current = generation.load(ordering: .acquiring)
            var spins = 0
            while current == seen && spins < Self.spinIterations {
                spins += 1
                if spins > 2_000 { sched_yield() }
                current = generation.load(ordering: .acquiring)
            }
            if current == seen {
                condition.lock()
                sleepers += 1
                while generation.load(ordering: .acquiring) == seen { condition.wait() }
                sleepers -= 1
                condition.unlock()
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if index < taskThreads, let task { task(index) }
            remaining.subtract(1, ordering: .releasing)
        }
    }
}

/// Wraps a value the compiler cannot prove Sendable, where the caller guarantees race-freedom.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

enum System {
    /// Cores this process may run on: the CPU affinity mask (taskset, Slurm, cpusets), further
    /// bounded by a cgroup v2 CPU quota (a container's or Kubernetes pod's CPU limit), rounded up.
    /// Read once: `Threading.threadCount` asks for it before every kernel.
    static let activeProcessorCount: Int = {
        var count = ProcessInfo.processInfo.activeProcessorCount
        let allowed = eff_affinity_cpu_count()
        if allowed > 0 { count = min(count, allowed) }
        if let quota = cgroupCPUQuota() { count = min(count, quota) }
        return max(1, count)
    }()

    /// `ceil(quota / period)` from /sys/fs/cgroup/cpu.max ("max 100000" means no limit).
    static func cgroupCPUQuota(_ path: String = "/sys/fs/cgroup/cpu.max") -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 2, let quota = Double(fields[0]), let period = Double(fields[1]), quota > 0, period > 0 else { return nil }
        return max(1, Int((quota / period).rounded(.up)))
    }
}

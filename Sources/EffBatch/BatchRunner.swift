import Dispatch
import EffImage
import Foundation

/// How a batch run went; `description` is the summary line.
public struct BatchSummary: Sendable, CustomStringConvertible {
    public var total = 0, succeeded = 0, failed = 0, skipped = 0
    /// Wall time of the pictures processed (skipped ones excluded).
    public var seconds = 0.0

    public var imagesPerSecond: Double { seconds > 0 ? Double(succeeded + failed) / seconds : 0 }

    public var description: String {
        var parts = ["\(succeeded) done"]
        if failed > 0 { parts.append("\(failed) failed (reported above)") }
        if skipped > 0 { parts.append("\(skipped) skipped (--resume: already done)") }
        return "\(total) pictures: " + parts.joined(separator: ", ")
            + String(format: " in %.1f s, %.2f images/s", seconds, imagesPerSecond)
    }
}

/// Some pictures of a run failed (each was reported already); the description is the summary.
public struct PicturesFailed: Error, CustomStringConvertible {
    public let summary: BatchSummary
    public init(summary: BatchSummary) { self.summary = summary }
    public var description: String { summary.description }
}

/// Runs many pictures through three stages that overlap: `prepare` (read and decode) runs ahead
/// on its own thread, `compute` (the network) runs on the caller's thread in input order, and
/// `finish` (drawing, encoding, writing files and the JSON line) runs behind on its own thread, in
/// input order. A picture's own failure (`ImageError`) is handed to `report` in order and the run
/// goes on; any other error stops the run and is rethrown once the stages have drained.
public struct BatchRunner {
    /// Pictures decoded ahead of the network (each holds its decoded pixels in memory).
    public var prefetch = 2
    /// Draw a progress bar on standard error.
    public var showProgress: Bool

    public init(showProgress: Bool = isatty(STDERR_FILENO) != 0) {
        self.showProgress = showProgress
    }

    public func run<Prepared, Computed>(
        _ pictures: [InputPicture],
        skip: (InputPicture) -> Bool = { _ in false },
        prepare: @escaping (InputPicture) throws -> Prepared,
        compute: (InputPicture, Prepared) throws -> Computed,
        finish: @escaping (InputPicture, Computed) throws -> Void,
        report: @escaping (InputPicture, Error) throws -> Void
    ) throws -> BatchSummary {
        var summary = BatchSummary()
        summary.total = pictures.count
        let todo = pictures.filter { !skip($0) }
        summary.skipped = pictures.count - todo.count
        let progress = ProgressBar(total: todo.count, enabled: showProgress)
        let stdoutIsTerminal = isatty(STDOUT_FILENO) != 0
        let start = DispatchTime.now()

        // prepare → compute: a bounded, ordered hand-off.
        let prepared = OrderedQueue<Result<Prepared, Error>>(capacity: prefetch)
        let stop = Flag()
        let readStage = Unchecked(prepare)
        let reader = Thread {
            for picture in todo {
                if stop.isSet { break }
                prepared.put(Result { try readStage.value(picture) })
            }
        }
        reader.stackSize = 8 << 20
        // compute → finish: a serial queue, bounded so finished pictures do not pile up.
        let writer = DispatchQueue(label: "effdense.batch.finish")
        let writerSlots = DispatchSemaphore(value: 2)
        let outcome = Outcome()
        let stages = Unchecked((finish, report))

        reader.start()
        for picture in todo {
            let input = prepared.take()
            if stop.isSet { break }
            let result: Result<Computed, Error> = input.flatMap { value in Result { try compute(picture, value) } }
            if case .failure(let error) = result, !(error is ImageError) {
                stop.set()
                outcome.fail(error)
                break
            }
            writerSlots.wait()
            let item = Unchecked(result)
            writer.async {
                defer { writerSlots.signal() }
                guard !outcome.stopped else { return }
                // The finish stage may print a line to a terminal the bar is drawn on.
                if stdoutIsTerminal { progress.clear() }
                do {
                    switch item.value {
                    case .success(let computed):
                        do {
                            try stages.value.0(picture, computed)
                            outcome.succeeded()
                        } catch let error as ImageError {
                            try stages.value.1(picture, error)
                            outcome.failed()
                        }
                    case .failure(let error):
                        try stages.value.1(picture, error)
                        outcome.failed()
                    }
                } catch {
                    outcome.fail(error)
                    stop.set()
                }
                progress.advance()
            }
            if stop.isSet { break }
        }
        stop.set()
        prepared.drain()
        writer.sync {}
        while !reader.isFinished { prepared.drain(); usleep(1000) }
        progress.clear()
        if let error = outcome.error { throw error }
        summary.succeeded = outcome.counts.succeeded
        summary.failed = outcome.counts.failed
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        return summary
    }
}

/// A value handed between the batch threads; each is touched by one thread at a time.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A one-way switch shared between threads.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Counts and the first fatal error of a run, written by the finish thread.
final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var succeededCount = 0, failedCount = 0
    private(set) var error: Error?
    var stopped: Bool { lock.withLock { error != nil } }
    var counts: (succeeded: Int, failed: Int) { lock.withLock { (succeededCount, failedCount) } }
    func succeeded() { lock.withLock { succeededCount += 1 } }
    func failed() { lock.withLock { failedCount += 1 } }
    func fail(_ error: Error) { lock.withLock { if self.error == nil { self.error = error } } }
}

/// A first-in first-out hand-off holding at most `capacity` items: `put` waits while it is full,
/// `take` while it is empty.
final class OrderedQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func put(_ item: Element) {
        condition.lock()
        while items.count >= capacity { condition.wait() }
        items.append(item)
        condition.broadcast()
        condition.unlock()
    }

    func take() -> Element {
        condition.lock()
        while items.isEmpty { condition.wait() }
        let item = items.removeFirst()
        condition.broadcast()
        condition.unlock()
        return item
    }

    /// Drops what is waiting (when a run stops early), unblocking the producer.
    func drain() {
        condition.lock()
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}

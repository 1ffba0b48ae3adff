import Dispatch
import EffImage
import Foundation

/// How a batch run went; `description` is the summary line.
public struct BatchSummary: Sendable, CustomStringConvertible {
    public var total = 0, succeeded = 0, failed = 0, skipped = 0
    /// Wall time of the pictures processed (skipped ones excluded).
    public var seconds = 0.0
    /// Videos among the inputs processed, their frames processed and the seconds they took.
    public var videos = 0, frames = 0
    public var videoSeconds = 0.0
    /// Name the inputs "inputs", not "pictures" (some are videos, maybe skipped by --resume).
    public var includesVideos = false

    public init() {}

    public var imagesPerSecond: Double { seconds > 0 ? Double(succeeded + failed) / seconds : 0 }

    public var description: String {
        var parts = ["\(succeeded) done"]
        if failed > 0 { parts.append("\(failed) failed (reported above)") }
        if skipped > 0 { parts.append("\(skipped) skipped (--resume: already done)") }
        let what = videos == 0 && !includesVideos ? (total == 1 ? "picture" : "pictures") : (total == 1 ? "input" : "inputs")
        let pictures = succeeded + failed - videos
        return "\(total) \(what): " + parts.joined(separator: ", ") + String(format: " in %.1f s", seconds)
            + (pictures > 0 || videos == 0 ? String(format: ", %.2f images/s", seconds - videoSeconds > 0 ? Double(pictures) / (seconds - videoSeconds) : 0) : "")
            + (videos > 0 ? String(format: ", %d video frames at %.2f frames/s", frames, videoSeconds > 0 ? Double(frames) / videoSeconds : 0) : "")
    }
}

/// Some pictures of a run failed (each was reported already); the description is the summary.
public struct PicturesFailed: Error, CustomStringConvertible {
    public let summary: BatchSummary
    public init(summary: BatchSummary) { self.summary = summary }
    public var description: String { summary.description }
}

/// Runs many pictures, several at once: each of `concurrentPictures` threads takes the next
/// picture and works on it from start to finish (`process`: decode, network, drawing, writing its
/// files), so one picture's decoding and writing overlap with others' networks. What each leaves
/// (its record, or its own failure — an `ImageError`) is handed to `record` / `report` strictly in
/// input order, as soon as all pictures before it are done. Any other error stops the run: no new
/// picture is started, the pictures before the failing one are still recorded, and the error is
/// rethrown.
public struct BatchRunner {
    /// Pictures worked on at the same time (each on its own thread).
    public var concurrentPictures: Int
    /// Draw a progress bar on standard error.
    public var showProgress: Bool

    public init(concurrentPictures: Int = 1, showProgress: Bool = isatty(STDERR_FILENO) != 0) {
        self.concurrentPictures = max(1, concurrentPictures)
        self.showProgress = showProgress
    }

    /// Runs `pictures`; `alreadyDone` more were skipped by the caller (`--resume`) and are only
    /// counted in the summary.
    public func run<Record>(
        _ pictures: [InputPicture],
        alreadyDone: Int = 0,
        process: @escaping (InputPicture) throws -> Record,
        record: @escaping (InputPicture, Record) throws -> Void,
        report: @escaping (InputPicture, Error) throws -> Void
    ) throws -> BatchSummary {
        let start = DispatchTime.now()
        let progress = ProgressBar(total: pictures.count, enabled: showProgress)
        let ledger = InOrderLedger(record: record, report: report, progress: progress,
                                   clearsProgressFirst: isatty(STDOUT_FILENO) != 0)
        let work = Unchecked(process)
        let worker = Unchecked {
            while let index = ledger.claim(below: pictures.count) {
                let picture = pictures[index]
                do {
                    ledger.deliver(index, picture, .done(try work.value(picture)))
                } catch let error as ImageError {
                    ledger.deliver(index, picture, .failed(error))
                } catch {
                    ledger.stop()
                    ledger.deliver(index, picture, .fatal(error))
                }
            }
        }
        let helpers = (1..<max(1, min(concurrentPictures, pictures.count))).map { _ in
            let finished = DispatchSemaphore(value: 0)
            let thread = Thread { worker.value(); finished.signal() }
            thread.stackSize = 8 << 20
            thread.start()
            return finished
        }
        worker.value()
        for finished in helpers { finished.wait() }
        progress.clear()
        if let error = ledger.error { throw error }
        var summary = BatchSummary()
        summary.total = pictures.count + alreadyDone
        summary.skipped = alreadyDone
        (summary.succeeded, summary.failed) = ledger.counts
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        return summary
    }
}

/// Hands out picture indices in order and records what the workers deliver in that order: a
/// picture delivered early waits until every picture before it has been recorded.
final class InOrderLedger<Record>: @unchecked Sendable {
    enum Outcome {
        case done(Record)
        case failed(Error)
        case fatal(Error)
    }

    private let lock = NSLock()
    private var nextClaim = 0, nextRecord = 0
    private var waiting: [Int: (InputPicture, Outcome)] = [:]
    private var stopped = false
    private var succeeded = 0, failed = 0
    private(set) var error: Error?
    private let record: (InputPicture, Record) throws -> Void
    private let report: (InputPicture, Error) throws -> Void
    private let progress: ProgressBar
    private let clearsProgressFirst: Bool

    init(record: @escaping (InputPicture, Record) throws -> Void, report: @escaping (InputPicture, Error) throws -> Void,
         progress: ProgressBar, clearsProgressFirst: Bool) {
        self.record = record
        self.report = report
        self.progress = progress
        self.clearsProgressFirst = clearsProgressFirst
    }

    var counts: (succeeded: Int, failed: Int) { lock.withLock { (succeeded, failed) } }

    /// The next picture to work on, or nil when all are taken or the run stopped.
    func claim(below count: Int) -> Int? {
        lock.withLock {
            guard !stopped, nextClaim < count else { return nil }
            nextClaim += 1
            return nextClaim - 1
        }
    }

    /// No picture is started after this.
    func stop() { lock.withLock { stopped = true } }

    /// Takes picture `index`'s outcome and records every outcome now due, in order (on the
    /// calling thread, one thread at a time).
    func deliver(_ index: Int, _ picture: InputPicture, _ outcome: Outcome) {
        lock.lock()
        defer { lock.unlock() }
        waiting[index] = (picture, outcome)
        while error == nil, let (picture, outcome) = waiting.removeValue(forKey: nextRecord) {
            nextRecord += 1
            // `record` may print a line to the terminal the bar is drawn on.
            if clearsProgressFirst { progress.clear() }
            do {
                switch outcome {
                case .done(let value):
                    try record(picture, value)
                    succeeded += 1
                case .failed(let failure):
                    try report(picture, failure)
                    failed += 1
                case .fatal(let failure):
                    throw failure
                }
                progress.advance()
            } catch {
                self.error = error
                stopped = true
            }
        }
    }
}

/// A value handed between the batch threads; each is touched by one thread at a time.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

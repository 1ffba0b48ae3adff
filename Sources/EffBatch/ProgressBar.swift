import Dispatch
import Foundation

/// `[=====>      ]  120/200  15.2 images/s  ETA 0:05` on standard error, redrawn in place at most
/// ten times a second; nothing at all when disabled (standard error is not a terminal). `unit`
/// names what is counted ("images", "tiles").
public final class ProgressBar: @unchecked Sendable {
    private let total: Int
    private let enabled: Bool
    private let unit: String
    private let start = DispatchTime.now().uptimeNanoseconds
    private var done = 0
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private let lock = NSLock()

    public init(total: Int, enabled: Bool = isatty(STDERR_FILENO) != 0, unit: String = "images") {
        self.total = total
        self.enabled = enabled && total > 1
        self.unit = unit
    }

    public func advance(by count: Int = 1) {
        lock.withLock {
            done += count
            guard enabled else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            if now - lastDraw >= 100_000_000 || done == total {
                lastDraw = now
                draw(elapsed: Double(now - start) / 1e9)
            }
        }
    }

    /// Removes the bar (before other output is printed, and at the end).
    public func clear() {
        lock.withLock {
            guard drawn else { return }
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            drawn = false
        }
    }

    private func draw(elapsed: Double) {
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "=", count: max(0, filled - 1)) + (filled > 0 ? ">" : "") + String(repeating: " ", count: width - filled)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let remaining = rate > 0 ? Int((Double(total - done) / rate).rounded()) : 0
        let line = String(format: "\r[%@] %*d/%d  %.1f %@/s  ETA %d:%02d\u{1B}[K", bar, String(total).count, done, total, rate, unit, remaining / 60, remaining % 60)
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }
}

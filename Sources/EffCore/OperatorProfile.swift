import Foundation
import Synchronization

/// Time spent per operator and input shape, summed while profiling is on (`effdense bench
/// --profile`). Off by default: then measuring an operator costs one atomic load. An operator
/// that runs inside another measured one (a fused block falling back to its layers) counts only
/// in the outer one.
public enum OperatorProfile {
    /// One operator at one input shape.
    public struct Entry: Sendable {
        /// The kind, e.g. "conv 1x1" or "depthwise 3x3".
        public let name: String
        /// Channels, stride, dilation and the input's height x width.
        public let detail: String
        public let milliseconds: Double
        public let calls: Int
    }

    private static let enabled = Atomic<Bool>(false)
    private static let table = Mutex<[String: (name: String, detail: String, milliseconds: Double, calls: Int)]>([:])
    @TaskLocal private static var measuring = false

    /// Clears the table and starts measuring.
    public static func start() {
        table.withLock { $0.removeAll() }
        enabled.store(true, ordering: .releasing)
    }

    /// Stops measuring and returns the entries, most time first.
    public static func stop() -> [Entry] {
        enabled.store(false, ordering: .releasing)
        return table.withLock { $0.values }
            .map { Entry(name: $0.name, detail: $0.detail, milliseconds: $0.milliseconds, calls: $0.calls) }
            .sorted { $0.milliseconds > $1.milliseconds }
    }

    /// Runs `body`, adding its time to `name` at `detail` and the input's height x width when profiling.
    @inline(__always)
    static func measure<T>(_ name: @autoclosure () -> String, _ detail: @autoclosure () -> String, _ input: Tensor,
                           _ body: () throws -> T) rethrows -> T {
        try measure(name(), detail(), shape: input.shape, body)
    }

    /// `measure` for an input of shape `shape`.
    static func measure<T>(_ name: @autoclosure () -> String, _ detail: @autoclosure () -> String, shape: @autoclosure () -> [Int],
                           _ body: () throws -> T) rethrows -> T {
        guard enabled.load(ordering: .relaxed), !measuring else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try $measuring.withValue(true) { try body() }
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let shape = shape()
        let size = shape.count == 4 ? " @\(shape[1])x\(shape[2])" : " \(shape)"
        let (kind, fullDetail) = (name(), detail() + size)
        table.withLock { table in
            let key = kind + "|" + fullDetail
            let old = table[key] ?? (kind, fullDetail, 0, 0)
            table[key] = (kind, fullDetail, old.milliseconds + milliseconds, old.calls + 1)
        }
        return result
    }
}

/// " s2", " d2", both or neither: the stride and dilation part of an operator's profile detail.
func strideDetail(stride: Int, dilation: Int) -> String {
    (stride > 1 ? " s\(stride)" : "") + (dilation > 1 ? " d\(dilation)" : "")
}

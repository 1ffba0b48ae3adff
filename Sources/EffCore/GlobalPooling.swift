import CKernels
import Foundation

/// The global average pools of one network run (squeeze-and-excitation gates, ASPP image
/// pooling), in the order the network takes them. By default each is the mean of its own input,
/// as in the reference libraries. A tile of a larger picture may instead be handed the picture's
/// means (`given`), so that its channels are scaled as the whole picture's are; and a run may
/// add up each pool's input over a region of its picture (`gathering`), to make such means tile
/// by tile. One instance serves one run: it counts the pools as they come. (No instance: each
/// pool the mean of its own input.)
public final class GlobalPooling: @unchecked Sendable {
    private let given: [Tensor]?
    private let region: (rows: Range<Int>, columns: Range<Int>)?
    private var taken = 0
    /// The input's height and width, which tell each pooled tensor's stride (set by the network).
    public var inputSize = (height: 0, width: 0)
    /// Per pool, the sums of its input's channels over the region, and how many pixels they add up.
    public private(set) var sums: [[Double]] = []
    public private(set) var counts: [Int] = []

    /// Pool i gives `means[i]` ([1, 1, 1, C]) whatever its input.
    public init(given means: [Tensor]) {
        given = means
        region = nil
    }

    /// Each pool the mean of its own input, its input also added up over the pixels whose
    /// position in the input picture lies in `rows` x `columns` (a pixel of a tensor at stride s
    /// stands for input pixel (s·y, s·x)).
    public init(gatheringRows rows: Range<Int>, columns: Range<Int>) {
        given = nil
        region = (rows, columns)
    }

    /// The mean [N, 1, 1, C] the pool at this point of the run takes of `input` [N, H, W, C].
    public func mean(of input: Tensor) throws -> Tensor {
        let index = taken
        taken += 1
        if let given {
            guard index < given.count else {
                throw TensorError("GlobalPooling", "the network takes more global pools (\(index + 1)) than the \(given.count) means given")
            }
            let (n, _, _, c) = try input.requireNHWC("GlobalPooling")
            guard n == 1, given[index].shape == [1, 1, 1, c] else {
                throw TensorError("GlobalPooling", "pool \(index) of \(input.shape) was given a mean of shape \(given[index].shape)")
            }
            return given[index]
        }
        if let region { try gather(input, over: region) }
        return try globalAveragePool(input)
    }

    private func gather(_ input: Tensor, over region: (rows: Range<Int>, columns: Range<Int>)) throws {
        let (n, h, w, c) = try input.requireNHWC("GlobalPooling")
        guard n == 1, h > 0, w > 0, inputSize.height > 0, inputSize.width > 0 else {
            throw TensorError("GlobalPooling", "gathering needs one picture and its input size, found \(input.shape) of \(inputSize)")
        }
        // Pixel y stands for input row s·y: those rows within the region.
        func within(_ range: Range<Int>, stride: Double, count: Int) -> Range<Int> {
            let first = min(count, Int((Double(range.lowerBound) / stride).rounded(.up)))
            return first..<max(first, min(count, Int((Double(range.upperBound) / stride).rounded(.up))))
        }
        let rows = within(region.rows, stride: Double(inputSize.height) / Double(h), count: h)
        let columns = within(region.columns, stride: Double(inputSize.width) / Double(w), count: w)
        var sum = [Double](repeating: 0, count: c), rowSum = [Double](repeating: 0, count: c)
        input.withUnsafeBufferPointer { x in
            guard let x = x.baseAddress, !columns.isEmpty else { return }
            for y in rows {
                eff_channel_sums(x + (y * w + columns.lowerBound) * c, columns.count, c, &rowSum)
                for channel in 0..<c { sum[channel] += rowSum[channel] }
            }
        }
        sums.append(sum)
        counts.append(rows.count * columns.count)
    }
}

/// The sums and counts of the gathering runs of a picture's tiles, added up into the picture's
/// means (thread-safe: tiles finish on their workers' threads).
public final class GatheredMeans: @unchecked Sendable {
    private let lock = NSLock()
    private var sums: [[Double]] = []
    private var counts: [Int] = []

    public init() {}

    /// Adds one run's sums (every run of one network takes the same pools).
    public func add(_ run: GlobalPooling) throws {
        try lock.withLock {
            if sums.isEmpty {
                sums = run.sums
                counts = run.counts
                return
            }
            guard run.sums.map(\.count) == sums.map(\.count) else {
                throw TensorError("GatheredMeans", "runs took different pools: \(run.sums.map(\.count)) and \(sums.map(\.count)) channels")
            }
            for i in sums.indices {
                for c in sums[i].indices { sums[i][c] += run.sums[i][c] }
                counts[i] += run.counts[i]
            }
        }
    }

    /// Each pool's mean over every pixel the runs added up, [1, 1, 1, C].
    public func means() throws -> [Tensor] {
        try lock.withLock {
            try zip(sums, counts).enumerated().map { i, pool in
                guard pool.1 > 0 else { throw TensorError("GatheredMeans", "pool \(i) added up no pixels") }
                return try Tensor(shape: [1, 1, 1, pool.0.count], values: pool.0.map { Float($0 / Double(pool.1)) })
            }
        }
    }
}

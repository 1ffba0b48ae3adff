import EffCore

/// Hands a model the tensors it asks for, by name and expected shape, and checks at the end
/// that the file held nothing the model left unused (except BatchNorm's `num_batches_tracked`).
/// Every error names the file, the key, the expected and the found shape.
public final class WeightBinder {
    public let store: WeightStore
    private var used: Set<String> = []
    private var random: SplitMix64?

    public init(_ store: WeightStore) {
        self.store = store
    }

    /// A binder that makes up seeded random weights of whatever shape is asked (for benchmarks):
    /// fan-in scaled values, BatchNorm variances near 1.
    public init(randomSeed seed: UInt64) {
        store = WeightStore(file: "(random weights)", format: .safetensors, entries: [])
        random = SplitMix64(seed: seed)
    }

    /// The tensor `name`, which must exist and have exactly `shape`.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        if random != nil { return makeRandom(name, shape) }
        guard let info = store.info(name) else {
            throw WeightsError(.missingKey, store.file, "missing key '\(name)' (expected shape \(shape)); the file's key layout is \(store.layout.rawValue)")
        }
        guard info.shape == shape else {
            throw WeightsError(.shapeMismatch, store.file, "key '\(name)' has shape \(info.shape), the model expects \(shape)")
        }
        used.insert(name)
        return try store.tensor(name)
    }

    /// Accepts the tensors under `prefix` without loading them: parameters a reference library
    /// keeps in its state dict but never uses (e.g. smp encoders' unused head convolution).
    public func skip(prefix: String) {
        for name in store.names where name.hasPrefix(prefix) { used.insert(name) }
    }

    /// The names the model did not ask for, BatchNorm counters left out.
    public var unusedNames: [String] {
        store.names.filter { !used.contains($0) && !$0.hasSuffix("num_batches_tracked") }
    }

    private func makeRandom(_ name: String, _ shape: [Int]) -> Tensor {
        var tensor = Tensor(uninitialized: shape)
        let fanIn = max(1, shape.dropFirst().reduce(1, *))
        let scale = Float(1 / Double(fanIn).squareRoot())
        tensor.withUnsafeMutableBufferPointer { values in
            for i in values.indices {
                let u = Float(random!.next() >> 40) / Float(1 << 24)  // 0..<1
                if name.hasSuffix("running_var") || (name.hasSuffix(".weight") && shape.count == 1) {
                    values[i] = 0.5 + u
                } else {
                    values[i] = (2 * u - 1) * scale
                }
            }
        }
        return tensor
    }

    /// Throws when the file holds tensors the model did not use (listing up to ten).
    public func finish() throws {
        let unused = unusedNames
        guard unused.isEmpty else {
            let listed = unused.prefix(10).joined(separator: ", ")
            let more = unused.count > 10 ? " and \(unused.count - 10) more" : ""
            throw WeightsError(.unusedKeys, store.file, "\(unused.count) unexpected key\(unused.count == 1 ? "" : "s") the model does not use: \(listed)\(more)")
        }
    }
}


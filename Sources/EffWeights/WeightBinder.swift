import EffCore

/// Hands a model the tensors it asks for, by name and expected shape, and checks at the end
/// that the file held nothing the model left unused (except BatchNorm's `num_batches_tracked`).
/// Every error names the file, the key, the expected and the found shape.
public final class WeightBinder {
    public let store: WeightStore
    private var used: Set<String> = []

    public init(_ store: WeightStore) {
        self.store = store
    }

    /// The tensor `name`, which must exist and have exactly `shape`.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
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

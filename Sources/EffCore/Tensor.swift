import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shape or size problem found by a tensor operation: what was expected and what was found.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    /// The operation or value that failed the check.
    public let operation: String
    /// What was wrong, e.g. "expected [1, 8, 8, 3], found [1, 8, 8, 4]".
    public let problem: String

    public init(_ operation: String, _ problem: String) {
        self.operation = operation
        self.problem = problem
    }

    public var description: String { "\(operation): \(problem)" }
}

/// How the process's allocator treats tensor memory.
public enum TensorMemory {
    /// Keeps freed tensor memory in the process for the next forward pass (glibc: large blocks
    /// come from the heap instead of a fresh `mmap` each, and the heap is not trimmed), so a
    /// pass after the first reuses warm pages instead of faulting in new zeroed ones. Blocks
    /// over 256 MB are still mapped and returned. For programs that run many forward passes.
    public static func keepFreedMemory() {
        eff_keep_freed_memory()
    }

    /// Called with the byte count when a tensor cannot be allocated (the process is out of
    /// memory); must not return. The default stops with a precondition failure; a program sets
    /// one that reports the error its own way (the CLI: one line, exit status 1).
    nonisolated(unsafe) public static var allocationFailure: (Int) -> Never = { bytes in
        preconditionFailure("out of memory allocating \(bytes) bytes for a tensor")
    }
}

/// 64-byte aligned Float32 storage shared by tensors (copy-on-write through `Tensor`).
final class TensorStorage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    /// Uninitialised storage for `count` floats.
    init(count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        // posix_memalign only fails when out of memory; there is no way to go on then.
        guard posix_memalign(&raw, 64, (bytes + 63) & ~63) == 0, let raw else {
            TensorMemory.allocationFailure(bytes)
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    func copy() -> TensorStorage {
        let other = TensorStorage(count: count)
        other.pointer.update(from: pointer, count: count)
        return other
    }

    deinit { free(pointer) }
}

/// A dense Float32 tensor, contiguous and row-major. Image tensors are NHWC:
/// `[batch, height, width, channels]`. Value semantics: copies share storage until written.
public struct Tensor: @unchecked Sendable {
    /// The extent of each dimension, outermost first.
    public private(set) var shape: [Int]
    var storage: TensorStorage

    /// Number of elements.
    public var count: Int { storage.count }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.init(uninitialized: shape)
        storage.pointer.initialize(repeating: 0, count: count)
    }

    /// A tensor filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        storage.pointer.initialize(repeating: value, count: count)
    }

    /// A tensor whose elements are not initialised; every element must be written before it is read.
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative tensor dimension in \(shape)")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public init(shape: [Int], values: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("Tensor(shape:values:)", "negative dimension in \(shape)")
        }
        let expected = shape.reduce(1, *)
        guard expected == values.count else {
            throw TensorError("Tensor(shape:values:)", "shape \(shape) needs \(expected) values, found \(values.count)")
        }
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.update(from: base, count: expected) }
        }
    }

    /// The same elements under another shape with the same element count (no copy).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.allSatisfy({ $0 >= 0 }), newShape.reduce(1, *) == count else {
            throw TensorError("reshape", "cannot view \(shape) (\(count) elements) as \(newShape)")
        }
        var view = self
        view.shape = newShape
        return view
    }

    /// The elements as an array (row-major).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// Reads the elements in place.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Writes the elements in place (copying first if the storage is shared).
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// Element at a multi-dimensional index (for tests and small tensors; not for hot loops).
    public subscript(_ index: Int...) -> Float {
        get { storage.pointer[flatIndex(index)] }
        set {
            let i = flatIndex(index)
            withUnsafeMutableBufferPointer { $0[i] = newValue }
        }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
        var flat = 0
        for (i, extent) in zip(index, shape) {
            precondition(i >= 0 && i < extent, "index \(index) out of range for shape \(shape)")
            flat = flat * extent + i
        }
        return flat
    }

    // MARK: NHWC views

    /// Checks that this is a rank-4 NHWC tensor, naming `operation` in the error.
    public func requireNHWC(_ operation: String) throws -> (n: Int, h: Int, w: Int, c: Int) {
        guard shape.count == 4 else {
            throw TensorError(operation, "expected an NHWC tensor of rank 4, found shape \(shape)")
        }
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// Checks that the shape equals `expected`, naming `what` in the error.
    public func requireShape(_ expected: [Int], _ what: String) throws {
        guard shape == expected else {
            throw TensorError(what, "expected shape \(expected), found \(shape)")
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(shape: \(shape))" }
}

extension Optional where Wrapped == Tensor {
    /// Calls `body` with the tensor's element pointer, or with nil when there is no tensor.
    func withUnsafeElementPointer<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        switch self {
        case .some(let tensor): return try tensor.withUnsafeBufferPointer { try body($0.baseAddress) }
        case .none: return try body(nil)
        }
    }
}

import EffCore
import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the
/// data. Every field is checked against the file before any tensor is read.
public enum Safetensors {
    /// safetensors' own cap on the header size.
    static let maxHeaderBytes = 100_000_000

    static func looksLike(_ data: Data) -> Bool {
        data.count >= 9 && data[data.startIndex + 8] == UInt8(ascii: "{")
    }

    /// A JSON list of whole numbers (`[4.7]` or `["4"]` is refused, not read as `[4]`).
    private static func integers(_ value: Any?) -> [Int]? {
        guard let items = value as? [Any] else { return nil }
        var numbers: [Int] = []
        for item in items {
            // Bridging to Int is exact: 4.7 or 1e30 gives nil.
            guard let number = item as? Int else { return nil }
            numbers.append(number)
        }
        return numbers
    }

    static func read(path: String, data: Data) throws -> [(String, TensorLocation)] {
        guard data.count >= 8 else { throw WeightsError(.corrupt, path, "safetensors file shorter than its 8-byte header length") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw WeightsError(.corrupt, path, "safetensors header length \(headerLength) exceeds the \(maxHeaderBytes)-byte limit")
        }
        guard 8 + Int(headerLength) <= data.count else {
            throw WeightsError(.corrupt, path, "safetensors header length \(headerLength) runs past the end of the file (\(data.count) bytes); the file is truncated")
        }
        let dataStart = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart))
        } catch {
            throw WeightsError(.corrupt, path, "safetensors header is not valid JSON")
        }
        guard let header = json as? [String: Any] else {
            throw WeightsError(.corrupt, path, "safetensors header is not a JSON object")
        }
        let dataBytes = data.count - dataStart
        var entries: [(String, TensorLocation, Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let fields = value as? [String: Any], let dtypeName = fields["dtype"] as? String,
                  let shape = integers(fields["shape"]), let offsets = integers(fields["data_offsets"]), offsets.count == 2 else {
                throw WeightsError(.corrupt, path, "tensor '\(name)': header entry needs dtype, shape and data_offsets as lists of whole numbers")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw WeightsError(.unsupportedDType, path, "tensor '\(name)' has dtype '\(dtypeName)', which effdense cannot read (F32, F16, BF16, F64 and integer types are supported)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard shape.allSatisfy({ $0 >= 0 }), begin >= 0, begin <= end, end <= dataBytes else {
                throw WeightsError(.corrupt, path, "tensor '\(name)': data_offsets [\(begin), \(end)] out of range (the data section has \(dataBytes) bytes)")
            }
            guard let count = TensorLocation.elementCount(shape), let bytes = dtype.byteCount(of: count) else {
                throw WeightsError(.corrupt, path, "tensor '\(name)' has an impossible shape \(shape): its dimensions multiply past 2^63")
            }
            guard bytes == end - begin else {
                throw WeightsError(.corrupt, path, "tensor '\(name)': shape \(shape) of \(dtypeName) needs \(bytes) bytes, data_offsets give \(end - begin)")
            }
            let strides = TensorLocation.contiguousStrides(shape)
            let location = TensorLocation(buffer: data, byteOffset: dataStart + begin, storageElements: count, dtype: dtype,
                                          offset: 0, shape: shape, strides: strides)
            try location.validate(name: name, file: path)
            entries.append((name, location, begin))
        }
        // Tensors may not overlap (the format requires a dense, non-overlapping data section).
        let sorted = entries.sorted { $0.2 < $1.2 }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.2 + a.1.storageElements * a.1.dtype.size > b.2 {
            throw WeightsError(.corrupt, path, "tensors '\(a.0)' and '\(b.0)' overlap in the data section")
        }
        return sorted.map { ($0.0, $0.1) }
    }

    /// A tensor to write: Float32 values (stored as F32, or F16 when converting with halfPrecision)
    /// or exact integers (stored as I64).
    public enum Values: Sendable {
        case float(Tensor)
        case integers([Int64], shape: [Int])
    }

    /// Writes a checkpoint's tensors as a safetensors file (atomically), in file order.
    public static func write(_ store: WeightStore, to path: String, halfPrecision: Bool = false) throws {
        try write(store.infos.map { info in
            (info.name, info.dtype.isFloatingPoint ? .float(try store.tensor(info.name)) : .integers(try store.integers(info.name), shape: info.shape))
        }, to: path, halfPrecision: halfPrecision)
    }

    /// Writes named tensors as a safetensors file (atomically), in the order given.
    public static func write(_ tensors: [(String, Values)], to path: String, halfPrecision: Bool = false) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt", "converted_by": "effdense"]]
        var body = Data()
        for (name, values) in tensors {
            let begin = body.count
            let dtype: DType, shape: [Int]
            switch values {
            case .float(let tensor):
                dtype = halfPrecision ? .float16 : .float32
                shape = tensor.shape
                for value in tensor.scalars {
                    if halfPrecision {
                        withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { body.append(contentsOf: $0) }
                    } else {
                        withUnsafeBytes(of: value.bitPattern.littleEndian) { body.append(contentsOf: $0) }
                    }
                }
            case .integers(let integers, let integerShape):
                dtype = .int64
                shape = integerShape
                for value in integers { withUnsafeBytes(of: value.littleEndian) { body.append(contentsOf: $0) } }
            }
            header[name] = ["dtype": dtype.rawValue, "shape": shape, "data_offsets": [begin, body.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned, as safetensors does.
        while (8 + json.count) % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(body)
        do {
            try AtomicFile.write(file, to: path)
        } catch let error as AtomicFileError {
            throw WeightsError(.unwritable, path, "cannot write the safetensors file (\(error.problem))")
        }
    }
}

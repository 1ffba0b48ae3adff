import EffCore
import Foundation

/// The container a checkpoint came in.
public enum CheckpointFormat: String, Sendable {
    case safetensors
    /// `torch.save` since PyTorch 1.6: a zip of `data.pkl` and `data/N` storages.
    case torchZip = "torch zip"
    /// `torch.save` before 1.6 (or `_use_new_zipfile_serialization=False`): pickles then raw storages.
    case torchLegacy = "torch legacy"
}

/// Name, dtype and shape of one stored tensor.
public struct WeightInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public var elementCount: Int { shape.reduce(1, *) }
}

/// Where a tensor's elements are: `buffer[byteOffset...]` holds a storage of `storageElements`
/// elements; the tensor starts `offset` elements in, with element `strides`.
struct TensorLocation: Sendable {
    let buffer: Data
    let byteOffset: Int
    let storageElements: Int
    let dtype: DType
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// The tensors of one checkpoint file by name, read lazily and converted to Float32 on access.
/// Names are the state dict's own, after picking the weights out of a training checkpoint
/// (`state_dict_ema`, `model_ema`, `state_dict`, `model`, in timm's order) and dropping a
/// `module.` (DataParallel) or `model.` prefix that every key shares.
public struct WeightStore: Sendable {
    /// The file the tensors came from.
    public let file: String
    public let format: CheckpointFormat
    /// Tensor names in file order.
    public let names: [String]
    let locations: [String: TensorLocation]

    /// Opens a safetensors file or a `torch.save` file (zip or legacy), recognised by content.
    public init(contentsOf path: String) throws {
        if let problem = PathText.notARegularFile(path) { throw WeightsError(.unreadable, path, problem) }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            throw WeightsError(.unreadable, path, !exists ? "no such file" : isDirectory.boolValue ? "it is a folder, not a checkpoint file" : "cannot read the file")
        }
        let (format, entries): (CheckpointFormat, [(String, TensorLocation)])
        if data.isEmpty {
            throw WeightsError(.corrupt, path, "the file is empty (0 bytes)")
        } else if data.count < TorchCheckpoint.legacyMagic.count {
            throw WeightsError(.corrupt, path, "the file is only \(data.count) bytes, too short for any checkpoint (truncated?)")
        } else if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            try ZipPreflight.check(data, path: path)
            (format, entries) = (.torchZip, try TorchCheckpoint.readZip(path: path))
        } else if data.starts(with: TorchCheckpoint.legacyMagic) {
            (format, entries) = (.torchLegacy, try TorchCheckpoint.readLegacy(path: path, data: data))
        } else if Safetensors.looksLike(data) {
            (format, entries) = (.safetensors, try Safetensors.read(path: path, data: data))
        } else {
            throw WeightsError(.unknownFormat, path, "not a checkpoint effdense can read (expected safetensors or a torch.save .pth/.pt/.bin file)")
        }
        self.init(file: path, format: format, entries: entries)
    }

    init(file: String, format: CheckpointFormat, entries: [(String, TensorLocation)]) {
        var entries = entries
        // DataParallel's `module.` and a wrapper's `model.` when every key shares them.
        for prefix in ["module.", "model."] where !entries.isEmpty && entries.allSatisfy({ $0.0.hasPrefix(prefix) }) {
            entries = entries.map { (String($0.0.dropFirst(prefix.count)), $0.1) }
        }
        self.file = file
        self.format = format
        names = entries.map(\.0)
        locations = Dictionary(entries, uniquingKeysWith: { first, _ in first })
    }

    /// Name, dtype and shape of a stored tensor, or nil if the file has no such name.
    public func info(_ name: String) -> WeightInfo? {
        locations[name].map { WeightInfo(name: name, dtype: $0.dtype, shape: $0.shape) }
    }

    /// Every stored tensor's name, dtype and shape, in file order.
    public var infos: [WeightInfo] { names.compactMap(info) }

    /// The key layout the names follow.
    public var layout: KeyLayout { KeyLayout(recognising: names) }

    /// The tensor `name` as contiguous Float32 (converted from F16 / BF16 / integers).
    public func tensor(_ name: String) throws -> Tensor {
        guard let location = locations[name] else {
            throw WeightsError(.missingKey, file, "no tensor named '\(name)'")
        }
        var tensor = Tensor(uninitialized: location.shape)
        let firstNonFinite = tensor.withUnsafeMutableBufferPointer { out -> Int? in
            location.convert(into: out)
            return out.firstIndex { !$0.isFinite }
        }
        // A NaN or infinite parameter poisons every output it reaches (boxes, scores, masks):
        // refused here, naming the tensor, rather than producing NaN results.
        if let firstNonFinite {
            let value = tensor.scalars[firstNonFinite]
            throw WeightsError(.nonFinite, file, "tensor '\(name)' holds \(value.isNaN ? "NaN" : value > 0 ? "+inf" : "-inf") (element \(firstNonFinite) of \(location.shape)); a checkpoint's parameters must be finite numbers")
        }
        return tensor
    }

    /// The tensor `name` as Int64 values (exact for integer dtypes).
    public func integers(_ name: String) throws -> [Int64] {
        guard let location = locations[name] else {
            throw WeightsError(.missingKey, file, "no tensor named '\(name)'")
        }
        var values = [Int64](repeating: 0, count: location.shape.reduce(1, *))
        location.forEachElement { raw, index, flat in values[flat] = location.dtype.loadInteger(raw, index) }
        return values
    }
}

extension TensorLocation {
    /// Checks that every element the view reaches lies inside its storage and the storage
    /// inside the buffer.
    func validate(name: String, file: String) throws {
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), offset >= 0, storageElements >= 0 else {
            throw WeightsError(.corrupt, file, "tensor '\(name)' has a negative size, stride or offset")
        }
        guard Self.elementCount(shape) != nil else {
            throw WeightsError(.corrupt, file, "tensor '\(name)' has an impossible shape \(shape): its dimensions multiply past 2^63")
        }
        guard byteOffset >= 0, let storageBytes = dtype.byteCount(of: storageElements), storageBytes <= buffer.count - byteOffset else {
            throw WeightsError(.corrupt, file, "tensor '\(name)': its storage (\(storageElements) \(dtype.rawValue) values at byte \(byteOffset)) runs past the end of the data (\(buffer.count) bytes); the file is truncated or its offsets are wrong")
        }
        // Element count and the last element reached, without overflowing.
        var elements = 1, last = offset
        for (size, stride) in zip(shape, strides) {
            let (product, productOverflow) = elements.multipliedReportingOverflow(by: size)
            let (reach, reachOverflow) = (size == 0 ? 0 : size - 1).multipliedReportingOverflow(by: stride)
            let (sum, sumOverflow) = last.addingReportingOverflow(reach)
            guard !productOverflow, !reachOverflow, !sumOverflow else {
                throw WeightsError(.corrupt, file, "tensor '\(name)' has an impossible shape \(shape) or strides \(strides)")
            }
            (elements, last) = (product, sum)
        }
        if elements == 0 { return }
        guard last < storageElements else {
            throw WeightsError(.corrupt, file, "tensor '\(name)' of shape \(shape) reaches element \(last) of a storage of \(storageElements) elements")
        }
        // A view with a zero stride repeats elements (torch's expand); a hostile one could claim
        // a huge tensor over a tiny storage.
        guard elements <= max(storageElements, Self.maxRepeatedElements) else {
            throw WeightsError(.corrupt, file, "tensor '\(name)' of shape \(shape) has \(elements) elements over a storage of \(storageElements)")
        }
    }

    /// The element count of `shape`, or nil when a dimension is negative or the dimensions
    /// multiply past Int. Zeros count as ones in the check, so `[0, 2^40, 2^40]` is refused like
    /// `[1, 2^40, 2^40]`: every partial product (row-major strides, sizes) then fits too.
    static func elementCount(_ shape: [Int]) -> Int? {
        var bound = 1
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = bound.multipliedReportingOverflow(by: max(size, 1))
            if overflow { return nil }
            bound = product
        }
        return shape.contains(0) ? 0 : bound
    }

    /// Row-major strides of `shape` (which `elementCount` accepted).
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * max(shape[axis + 1], 1) }
        return strides
    }

    /// The most elements a view may have beyond its storage's (by zero strides).
    static let maxRepeatedElements = 1 << 24

    /// Whether the view reads its elements in storage order (row-major strides).
    var isContiguous: Bool { strides == Self.contiguousStrides(shape) }

    /// Every element, as Float32 in row-major order, into `out` (which holds `shape`'s count):
    /// a contiguous view is converted in one pass (a plain copy for little-endian F32).
    func convert(into out: UnsafeMutableBufferPointer<Float>) {
        guard isContiguous else {
            forEachElement { raw, index, flat in out[flat] = dtype.load(raw, index) }
            return
        }
        buffer.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress, let destination = out.baseAddress, !out.isEmpty else { return }
            let storage = base + byteOffset
            if dtype == .float32 && UInt32(littleEndian: 1) == 1 {
                UnsafeMutableRawPointer(destination).copyMemory(from: storage + offset * 4, byteCount: out.count * 4)
            } else {
                for i in 0..<out.count { destination[i] = dtype.load(storage, offset + i) }
            }
        }
    }

    /// Calls `body(storageBase, elementIndex, flatOutputIndex)` for every element in row-major order.
    func forEachElement(_ body: (UnsafeRawPointer, Int, Int) -> Void) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        buffer.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress else { return }
            let storage = base + byteOffset
            var index = [Int](repeating: 0, count: shape.count)
            var element = offset
            for flat in 0..<count {
                body(storage, element, flat)
                // Advance the multi-index, last axis fastest.
                var axis = shape.count - 1
                while axis >= 0 {
                    index[axis] += 1
                    element += strides[axis]
                    if index[axis] < shape[axis] { break }
                    element -= strides[axis] * shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }
}

/// The naming scheme of a state dict, recognised from its keys.
public enum KeyLayout: String, Sendable {
    /// timm EfficientNet / Lite (`conv_stem`, `blocks.S.B.conv_dw`, `classifier`).
    case timm = "timm EfficientNet"
    /// effdet EfficientDet (`backbone.*` in timm's layout, `fpn.*`, `class_net.*`, `box_net.*`).
    case effdet = "effdet EfficientDet"
    /// lukemelas EfficientNet-PyTorch (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`).
    case lukemelas = "lukemelas EfficientNet"
    /// segmentation_models_pytorch DeepLabV3Plus with a lukemelas encoder (`efficientnet-bN`).
    case smpDeepLabV3PlusLukemelas = "segmentation_models_pytorch DeepLabV3Plus (efficientnet-bN encoder)"
    /// segmentation_models_pytorch DeepLabV3Plus with a timm encoder (`timm-efficientnet-bN`).
    case smpDeepLabV3PlusTimm = "segmentation_models_pytorch DeepLabV3Plus (timm-efficientnet-bN encoder)"
    /// torchvision EfficientNet (`features.N...`, `classifier.1`).
    case torchvision = "torchvision EfficientNet"
    case unknown = "unrecognised"

    /// Recognises the layout from a state dict's keys.
    public init(recognising keys: [String]) {
        let set = Set(keys)
        func has(_ prefix: String) -> Bool { keys.contains { $0.hasPrefix(prefix) } }
        if has("decoder.aspp") || (has("encoder.") && has("segmentation_head.")) {
            self = set.contains("encoder._conv_stem.weight") ? .smpDeepLabV3PlusLukemelas : .smpDeepLabV3PlusTimm
        } else if set.contains("backbone.conv_stem.weight") && (has("fpn.") || has("class_net.")) {
            self = .effdet
        } else if set.contains("_conv_stem.weight") {
            self = .lukemelas
        } else if set.contains("conv_stem.weight") && has("blocks.") {
            self = .timm
        } else if set.contains("features.0.0.weight") && has("features.1.0.block.") {
            self = .torchvision
        } else {
            self = .unknown
        }
    }
}

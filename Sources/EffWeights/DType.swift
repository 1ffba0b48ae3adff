/// Element types found in checkpoints. Everything converts to Float32 on load.
public enum DType: String, Sendable, CaseIterable {
    case float32 = "F32", float16 = "F16", bfloat16 = "BF16", float64 = "F64"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8", uint8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Whether the type holds floating-point values (parameters) rather than counters or flags.
    public var isFloatingPoint: Bool { [.float32, .float16, .bfloat16, .float64].contains(self) }

    /// The dtype of a torch storage class (`torch.FloatStorage`, ...).
    init?(torchStorage name: String) {
        switch name {
        case "FloatStorage": self = .float32
        case "HalfStorage": self = .float16
        case "BFloat16Storage": self = .bfloat16
        case "DoubleStorage": self = .float64
        case "LongStorage": self = .int64
        case "IntStorage": self = .int32
        case "ShortStorage": self = .int16
        case "CharStorage": self = .int8
        case "ByteStorage": self = .uint8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }

    /// Element `index` of little-endian raw data of this type, as Float.
    @inline(__always)
    func load(_ raw: UnsafeRawPointer, _ index: Int) -> Float {
        let p = raw + index * size
        switch self {
        case .float32: return Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
        case .float16: return Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))))
        case .bfloat16: return Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))) << 16)
        case .float64: return Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))))
        case .int64: return Float(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
        case .int32: return Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
        case .int16: return Float(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
        case .int8: return Float(p.load(as: Int8.self))
        case .uint8: return Float(p.load(as: UInt8.self))
        case .bool: return p.load(as: UInt8.self) != 0 ? 1 : 0
        }
    }

    /// Element `index` as Int64 (exact for integer types; floats truncated).
    /// Bytes of `count` elements, or nil when that does not fit in an Int.
    func byteCount(of count: Int) -> Int? {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
        return overflow || count < 0 ? nil : bytes
    }

    @inline(__always)
    func loadInteger(_ raw: UnsafeRawPointer, _ index: Int) -> Int64 {
        let p = raw + index * size
        switch self {
        case .int64: return Int64(littleEndian: p.loadUnaligned(as: Int64.self))
        case .int32: return Int64(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
        case .int16: return Int64(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
        case .int8: return Int64(p.load(as: Int8.self))
        case .uint8, .bool: return Int64(p.load(as: UInt8.self))
        case .float32, .float16, .bfloat16, .float64:
            // Truncated toward zero, saturated at Int64's range; NaN reads as 0 (never a trap).
            let value = load(raw, index)
            if value.isNaN { return 0 }
            if value >= 9.2e18 { return .max }
            if value <= -9.2e18 { return .min }
            return Int64(value)
        }
    }
}

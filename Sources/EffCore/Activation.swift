#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The activation applied in a kernel's epilogue.
public enum Activation: String, Sendable, CaseIterable {
    case identity, relu, relu6, silu, sigmoid

    /// The activation of one value (the definition the vector paths must agree with).
    @inlinable
    public func apply(_ x: Float) -> Float {
        switch self {
        case .identity: return x
        case .relu: return max(x, 0)
        case .relu6: return min(max(x, 0), 6)
        case .silu: return x / (1 + expf(-x))
        case .sigmoid: return 1 / (1 + expf(-x))
        }
    }
}

/// What a kernel does to each output row after the main sum: add the bias, apply the
/// activation, then add the residual (a tensor of the output's shape), in that order.
public struct Epilogue {
    public var activation: Activation
    public var addsResidual: Bool

    public init(activation: Activation = .identity, addsResidual: Bool = false) {
        self.activation = activation
        self.addsResidual = addsResidual
    }
}

/// Applies bias, activation and residual to `rows` rows of `channels` values, in place.
/// `bias` has `channels` values; `residual` (if any) is laid out like `output`.
@inline(__always)
func applyEpilogue(_ output: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                   bias: UnsafePointer<Float>?, activation: Activation,
                   residual: UnsafePointer<Float>?) {
    typealias V = SIMD16<Float>
    let vectorEnd = channels & ~15
    for r in 0..<rows {
        let row = output + r * channels
        let residualRow = residual.map { $0 + r * channels }
        var c = 0
        while c < vectorEnd {
            var v = UnsafeRawPointer(row + c).loadUnaligned(as: V.self)
            if let bias { v += UnsafeRawPointer(bias + c).loadUnaligned(as: V.self) }
            switch activation {
            case .identity: break
            case .relu: v = v.replacing(with: 0, where: v .< 0)
            case .relu6: v = v.clamped(lowerBound: V(repeating: 0), upperBound: V(repeating: 6))
            case .silu, .sigmoid:
                for i in 0..<16 { v[i] = activation.apply(v[i]) }
            }
            if let residualRow { v += UnsafeRawPointer(residualRow + c).loadUnaligned(as: V.self) }
            UnsafeMutableRawPointer(row + c).storeBytes(of: v, as: V.self)
            c += 16
        }
        while c < channels {
            var x = row[c]
            if let bias { x += bias[c] }
            x = activation.apply(x)
            if let residualRow { x += residualRow[c] }
            row[c] = x
            c += 1
        }
    }
}

/// Applies the epilogue to a whole NHWC output in parallel over rows of pixels.
func applyEpilogueParallel(_ output: UnsafeMutablePointer<Float>, pixels: Int, channels: Int,
                           bias: UnsafePointer<Float>?, activation: Activation,
                           residual: UnsafePointer<Float>?) {
    if bias == nil && activation == .identity && residual == nil { return }
    let out = UncheckedSendable(output), b = UncheckedSendable(bias), res = UncheckedSendable(residual)
    Threading.parallelFor(pixels, minimumPerThread: max(1, 4096 / max(channels, 1))) { range in
        applyEpilogue(out.value + range.lowerBound * channels, rows: range.count, channels: channels,
                      bias: b.value, activation: activation,
                      residual: res.value.map { $0 + range.lowerBound * channels })
    }
}

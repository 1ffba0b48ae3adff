#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels

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

extension Activation {
    /// The C kernels' code for this activation.
    var kernelCode: Int32 {
        switch self {
        case .identity: return EFF_ACT_IDENTITY
        case .relu: return EFF_ACT_RELU
        case .relu6: return EFF_ACT_RELU6
        case .silu: return EFF_ACT_SILU
        case .sigmoid: return EFF_ACT_SIGMOID
        }
    }
}

/// Applies bias, activation and residual to `rows` rows of `channels` values, in place.
/// `bias` has `channels` values; `residual` (if any) is laid out like `output`.
@inline(__always)
func applyEpilogue(_ output: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                   bias: UnsafePointer<Float>?, activation: Activation,
                   residual: UnsafePointer<Float>?) {
    eff_epilogue(output, rows, channels, bias, activation.kernelCode, residual)
}

/// Applies the epilogue to a whole NHWC output in parallel over rows of pixels.
func applyEpilogueParallel(_ output: UnsafeMutablePointer<Float>, pixels: Int, channels: Int,
                           bias: UnsafePointer<Float>?, activation: Activation,
                           residual: UnsafePointer<Float>?) {
    if bias == nil && activation == .identity && residual == nil { return }
    let out = UncheckedSendable(output), b = UncheckedSendable(bias), res = UncheckedSendable(residual)
    Threading.parallelFor(pixels, minimumPerThread: max(1, 16384 / max(channels, 1))) { range in
        applyEpilogue(out.value + range.lowerBound * channels, rows: range.count, channels: channels,
                      bias: b.value, activation: activation,
                      residual: res.value.map { $0 + range.lowerBound * channels })
    }
}

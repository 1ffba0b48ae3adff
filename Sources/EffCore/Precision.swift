import CKernels
import Synchronization

/// The number format convolutions compute in. Float32 is the default and the reference every
/// faster path is tested against; bfloat16 rounds the weights (once, at first use) and each
/// layer's input (on the fly) to bf16 and sums their products in float32 — AVX512_BF16's
/// VDPBF16PS, two multiply-adds per lane and instruction. Depthwise convolutions, pooling,
/// resizing and every epilogue (bias, activation, residual) stay float32.
public enum Precision: String, Sendable, CaseIterable {
    case float32 = "f32"
    case bfloat16 = "bf16"

    private static let selected = Atomic<Int>(0)
    @TaskLocal private static var scoped: Precision?

    /// The precision the convolutions run in now: `withPrecision`'s on this thread, else the
    /// process-wide one (`use`).
    public static var current: Precision { scoped ?? (selected.load(ordering: .relaxed) == 1 ? .bfloat16 : .float32) }

    /// Runs `body` with the convolutions it calls on this thread in `precision` (whatever the
    /// CPU has: bfloat16 there runs the portable kernel without AVX512_BF16), the process-wide
    /// setting untouched: for comparing both in one process.
    public static func withPrecision<Result>(_ precision: Precision, _ body: () throws -> Result) rethrows -> Result {
        try $scoped.withValue(precision, operation: body)
    }

    /// Whether this CPU runs bfloat16 at full speed (AVX512_BF16).
    public static var bfloat16Available: Bool { eff_kernels_use_avx512_bf16() != 0 }

    /// Selects `requested` for the whole process and returns what will run: float32 when
    /// bfloat16 is asked for on a CPU without AVX512_BF16 (its portable version is far slower
    /// than float32, so there it is only used by the tests, through `eff_gemm_packed_bf16`).
    @discardableResult
    public static func use(_ requested: Precision) -> Precision {
        let chosen: Precision = requested == .bfloat16 && bfloat16Available ? .bfloat16 : .float32
        selected.store(chosen == .bfloat16 ? 1 : 0, ordering: .relaxed)
        return chosen
    }
}

import CKernels
@testable import EffCore
import Foundation
import Testing

/// The bfloat16 GEMM (AVX512_BF16) and convolutions in bfloat16 against references in double
/// built from the same bf16-rounded operands: the only freedom left is float32 summation order,
/// so the tolerance is float32's (1e-5 of the sum of |products|), not bf16's.
@Suite(.serialized) struct BFloat16Tests {
    /// Rounds to the nearest bfloat16 (ties to even), as VCVTNEPS2BF16 does.
    static func bf16(_ value: Float) -> Double {
        var bits = value.bitPattern
        bits = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return Double(Float(bitPattern: bits & 0xFFFF_0000))
    }

    /// Both kernels: the AVX512_BF16 one (where the CPU has it; else the portable one again) and
    /// the portable one.
    @Test(arguments: [false, true])
    func packedGemmEqualsTheRoundedOperandsProduct(portable: Bool) throws {
        var rng = SeededGenerator(seed: 9090)
        for trial in 0..<80 {
            let m = [1, 2, 3, 5, 11, 12, 13, 25, 40].randomElement(using: &rng)!
            let k = [1, 2, 3, 16, 27, 31, 32, 33, 64, 100].randomElement(using: &rng)!
            let n = [1, 7, 15, 16, 17, 31, 32, 33, 48, 80].randomElement(using: &rng)!
            let (lda, ldc, ldr) = (k + trial % 3, n + trial % 2, n + trial % 4)
            let activation = Activation.allCases.randomElement(using: &rng)!
            let a = (0..<(m * lda)).map { _ in Float.random(in: -2...2, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -2...2, using: &rng) }
            let bias: [Float]? = trial % 2 == 0 ? (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } : nil
            let residual: [Float]? = trial % 3 == 0 ? (0..<(m * ldr)).map { _ in Float.random(in: -1...1, using: &rng) } : nil
            var packed = [Float](repeating: .nan, count: eff_gemm_packed_size(k, n))
            eff_gemm_pack_b(b, k, n, &packed)
            var panels = [UInt32](repeating: 0, count: eff_gemm_packed_bf16_size(k, n))
            eff_gemm_pack_bf16(packed, k, n, &panels)
            var c = [Float](repeating: .nan, count: m * ldc)
            if portable {
                eff_gemm_packed_bf16_portable(a, lda, m, k, panels, n, &c, ldc, bias, activation.kernelCode, residual, ldr)
            } else {
                eff_gemm_packed_bf16(a, lda, m, k, panels, n, &c, ldc, bias, activation.kernelCode, residual, ldr)
            }
            var worst = 0.0
            for i in 0..<m { for j in 0..<n {
                var sum = Double(bias?[j] ?? 0), magnitude = abs(sum)
                for p in 0..<k {
                    let product = Self.bf16(a[i * lda + p]) * Self.bf16(b[p * n + j])
                    sum += product
                    magnitude += abs(product)
                }
                let expected = referenceActivation(sum, activation) + Double(residual?[i * ldr + j] ?? 0)
                worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / max(1, magnitude))
            } }
            #expect(worst <= 1e-5, "bf16 gemm m\(m) k\(k) n\(n) \(activation) portable \(portable): \(worst)")
            for i in 0..<m where ldc > n { #expect(c[i * ldc + n].isNaN, "gemm wrote past column \(n)") }
        }
    }

    /// A layer split over threads by output columns rounds its input rows once
    /// (`eff_bf16_round_rows`) and each thread multiplies its columns (`eff_gemm_rounded_bf16`):
    /// the same numbers as the GEMM that rounds its rows itself, each call writing only its
    /// columns.
    @Test func roundedRowsGiveTheSameProduct() throws {
        var rng = SeededGenerator(seed: 9191)
        for trial in 0..<40 {
            let m = [1, 3, 12, 13, 49].randomElement(using: &rng)!
            let k = [1, 2, 27, 33, 192].randomElement(using: &rng)!
            let n = [16, 32, 33, 80, 192].randomElement(using: &rng)!
            let activation = Activation.allCases.randomElement(using: &rng)!
            let a = (0..<(m * k)).map { _ in Float.random(in: -2...2, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -2...2, using: &rng) }
            let bias = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let residual: [Float]? = trial % 2 == 0 ? (0..<(m * n)).map { _ in Float.random(in: -1...1, using: &rng) } : nil
            var packed = [Float](repeating: .nan, count: eff_gemm_packed_size(k, n))
            eff_gemm_pack_b(b, k, n, &packed)
            var panels = [UInt32](repeating: 0, count: eff_gemm_packed_bf16_size(k, n))
            eff_gemm_pack_bf16(packed, k, n, &panels)
            var expected = [Float](repeating: .nan, count: m * n)
            eff_gemm_packed_bf16(a, k, m, k, panels, n, &expected, n, bias, activation.kernelCode, residual, n)
            var rows = [UInt16](repeating: 0xFFFF, count: m * eff_bf16_row_width(k))
            eff_bf16_round_rows(a, k, m, k, &rows)
            let first = 32 * Int.random(in: 0...((n - 1) / 32), using: &rng)
            var c = [Float](repeating: .nan, count: m * n)
            let (columnPanels, columnBias) = (Array(panels[(first * ((k + 1) / 2))...]), Array(bias[first...]))
            let columnResidual = residual.map { Array($0[first...]) }
            c.withUnsafeMutableBufferPointer { c in
                eff_gemm_rounded_bf16(rows, m, k, columnPanels, n - first, c.baseAddress! + first, n, columnBias,
                                      activation.kernelCode, columnResidual, n, 0)
            }
            for i in 0..<m { for j in 0..<n {
                if j < first { #expect(c[i * n + j].isNaN, "wrote column \(j) before \(first)") }
                else { #expect(c[i * n + j] == expected[i * n + j], "m\(m) k\(k) n\(n) from \(first) at \(i),\(j)") }
            } }
        }
    }

    /// A convolution in bfloat16 equals the float32 convolution of the bf16-rounded input and
    /// weights (BatchNorm folded first, then rounded, as at load), with 1 and 2 threads, through
    /// every GEMM path of Conv2D (im2col tiles, 1x1 directly, 1x1 split by output channels).
    @Test(arguments: [1, 2])
    func convolutionInBFloat16IsFloat32OnRoundedOperands(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 515 + UInt64(threads))
        func rounded(_ t: Tensor) throws -> Tensor {
            var copy = t
            copy.withUnsafeMutableBufferPointer { values in for i in values.indices { values[i] = Float(Self.bf16(values[i])) } }
            return copy
        }
        for trial in 0..<30 {
            let k = [1, 1, 3].randomElement(using: &rng)!
            let (h, w) = trial % 5 == 0 ? (3, 4) : (Int.random(in: 1...20, using: &rng), Int.random(in: 1...20, using: &rng))
            let cin = [3, 16, 33, 96].randomElement(using: &rng)!, cout = [8, 17, 64, 96].randomElement(using: &rng)!
            let x = randomTensor([1, h, w, cin], &rng), weight = randomTensor([cout, cin, k, k], &rng), bias = randomTensor([cout], &rng)
            let activation = Activation.allCases.randomElement(using: &rng)!
            let conv = try Conv2D(weight: weight, bias: bias, padding: .same, activation: activation)
            let fast = try Precision.withPrecision(.bfloat16) { try conv(x) }
            let reference = try Conv2D(weight: rounded(weight), bias: bias, padding: .same, activation: activation)(rounded(x))
            #expect(maxRelativeError(fast, reference) <= 1e-5, "bf16 conv k\(k) \(x.shape)->\(cout) \(activation)")
            // And the float32 result is still float32's after a bf16 call (no state leaks).
            let again = try conv(x)
            let exact = try Conv2D(weight: weight, bias: bias, padding: .same, activation: activation)(x)
            #expect(maxRelativeError(again, exact) == 0)
        }
    }
}

import EffCore
import Foundation

// Plain reference versions of the kernels: obvious loops over NHWC indices, sums in Double.
// Used only by tests, to check the fast kernels over many random shapes.

/// A reproducible random generator, so failures can be replayed.
typealias SeededGenerator = SplitMix64

func randomTensor(_ shape: [Int], _ rng: inout SeededGenerator, range: ClosedRange<Float> = -1...1) -> Tensor {
    var tensor = Tensor(uninitialized: shape)
    tensor.withUnsafeMutableBufferPointer { values in
        for i in values.indices { values[i] = Float.random(in: range, using: &rng) }
    }
    return tensor
}

struct Dims { let n, h, w, c: Int }
func dims(_ t: Tensor) -> Dims { Dims(n: t.shape[0], h: t.shape[1], w: t.shape[2], c: t.shape[3]) }

func at(_ t: Tensor, _ n: Int, _ y: Int, _ x: Int, _ c: Int) -> Double { Double(t[n, y, x, c]) }

func referenceActivation(_ x: Double, _ activation: Activation) -> Double {
    switch activation {
    case .identity: return x
    case .relu: return max(x, 0)
    case .relu6: return min(max(x, 0), 6)
    case .silu: return x / (1 + exp(-x))
    case .sigmoid: return 1 / (1 + exp(-x))
    }
}

/// Convolution with PyTorch-layout weights [O, I/groups, k, k]; groups = 1 or = channels.
func referenceConv(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, dilation: Int, padding: Padding,
                   groups: Int, activation: Activation = .identity, residual: Tensor? = nil) -> Tensor {
    let d = dims(x)
    let (o, ipg, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
    let oh = (d.h + padding.top + padding.bottom - dilation * (k - 1) - 1) / stride + 1
    let ow = (d.w + padding.left + padding.right - dilation * (k - 1) - 1) / stride + 1
    var out = Tensor(zeros: [d.n, oh, ow, o])
    let opg = o / groups
    for b in 0..<d.n { for oy in 0..<oh { for ox in 0..<ow { for oc in 0..<o {
        var sum = bias.map { Double($0[oc]) } ?? 0
        let g = oc / opg
        for ic in 0..<ipg { for ky in 0..<k { for kx in 0..<k {
            let iy = oy * stride - padding.top + ky * dilation
            let ix = ox * stride - padding.left + kx * dilation
            guard iy >= 0, iy < d.h, ix >= 0, ix < d.w else { continue }
            sum += at(x, b, iy, ix, g * ipg + ic) * Double(weight[oc, ic, ky, kx])
        } } }
        sum = referenceActivation(sum, activation)
        if let residual { sum += at(residual, b, oy, ox, oc) }
        out[b, oy, ox, oc] = Float(sum)
    } } } }
    return out
}

/// Pooling with explicit padding: max ignores padding; average divides by the window within the
/// padded input (countIncludePad) or by the real pixels.
func referencePool(_ x: Tensor, kernel: Int, stride: Int, padding: Padding, isMax: Bool, countIncludePad: Bool) -> Tensor {
    let d = dims(x)
    let oh = (d.h + padding.top + padding.bottom - kernel) / stride + 1
    let ow = (d.w + padding.left + padding.right - kernel) / stride + 1
    var out = Tensor(zeros: [d.n, oh, ow, d.c])
    for b in 0..<d.n { for oy in 0..<oh { for ox in 0..<ow { for c in 0..<d.c {
        var best = -Double.infinity, sum = 0.0, real = 0, padded = 0
        for ky in 0..<kernel { for kx in 0..<kernel {
            let iy = oy * stride - padding.top + ky, ix = ox * stride - padding.left + kx
            if iy < d.h + padding.bottom && ix < d.w + padding.right { padded += 1 }
            guard iy >= 0, iy < d.h, ix >= 0, ix < d.w else { continue }
            best = max(best, at(x, b, iy, ix, c)); sum += at(x, b, iy, ix, c); real += 1
        } }
        out[b, oy, ox, c] = Float(isMax ? best : sum / Double(countIncludePad ? padded : real))
    } } } }
    return out
}

func referenceResizeNearest(_ x: Tensor, _ oh: Int, _ ow: Int) -> Tensor {
    let d = dims(x)
    var out = Tensor(zeros: [d.n, oh, ow, d.c])
    for b in 0..<d.n { for oy in 0..<oh { for ox in 0..<ow { for c in 0..<d.c {
        let sy = min(Int(floor(Double(oy) * Double(d.h) / Double(oh))), d.h - 1)
        let sx = min(Int(floor(Double(ox) * Double(d.w) / Double(ow))), d.w - 1)
        out[b, oy, ox, c] = x[b, sy, sx, c]
    } } } }
    return out
}

func referenceResizeBilinear(_ x: Tensor, _ oh: Int, _ ow: Int, alignCorners: Bool) -> Tensor {
    let d = dims(x)
    func source(_ dst: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Double) {
        let s: Double
        if alignCorners {
            s = outSize > 1 ? Double(dst) * Double(inSize - 1) / Double(outSize - 1) : 0
        } else {
            s = max((Double(dst) + 0.5) * Double(inSize) / Double(outSize) - 0.5, 0)
        }
        let i0 = min(Int(floor(s)), inSize - 1)
        return (i0, min(i0 + 1, inSize - 1), s - Double(i0))
    }
    var out = Tensor(zeros: [d.n, oh, ow, d.c])
    for b in 0..<d.n { for oy in 0..<oh { for ox in 0..<ow { for c in 0..<d.c {
        let (y0, y1, ly) = source(oy, d.h, oh), (x0, x1, lx) = source(ox, d.w, ow)
        let top = (1 - lx) * at(x, b, y0, x0, c) + lx * at(x, b, y0, x1, c)
        let bottom = (1 - lx) * at(x, b, y1, x0, c) + lx * at(x, b, y1, x1, c)
        out[b, oy, ox, c] = Float((1 - ly) * top + ly * bottom)
    } } } }
    return out
}

/// Largest |a - b| / max(1, |b|) over all elements (relative error with an absolute floor of 1
/// for values near zero); infinity when the shapes differ.
func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Double {
    guard a.shape == b.shape else { return .infinity }
    let x = a.scalars, y = b.scalars
    var worst = 0.0
    for i in 0..<x.count {
        if x[i].isNaN != y[i].isNaN { return .infinity }
        worst = max(worst, Double(abs(x[i] - y[i])) / max(1, Double(abs(y[i]))))
    }
    return worst
}

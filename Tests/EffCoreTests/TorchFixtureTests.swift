import EffCore
import Foundation
import Testing

/// The kernels against outputs recorded from torch and timm's layers
/// (Fixtures/kernels.json, written by scripts/make_kernel_fixtures.py).
@Suite struct TorchFixtureTests {
    struct StoredTensor: Decodable {
        let shape: [Int]
        let data: [Float]
        func tensor() throws -> Tensor { try Tensor(shape: shape, values: data) }
    }

    struct Params: Decodable {
        var outHeight: Int?, outWidth: Int?, alignCorners: Bool?
        var kernel: Int?, stride: Int?, dilation: Int?, padding: String?, countIncludePad: Bool?
        var eps: Float?, activation: String?
    }

    struct Case: Decodable, CustomTestStringConvertible {
        let name: String
        let op: String
        let params: Params
        let tensors: [String: StoredTensor]
        var testDescription: String { name }

        func tensor(_ key: String) throws -> Tensor {
            guard let stored = tensors[key] else { throw TensorError(name, "fixture has no tensor '\(key)'") }
            return try stored.tensor()
        }

        var paddingMode: PaddingMode {
            switch params.padding ?? "valid" {
            case "same": return .same
            case "symmetric": return .symmetric
            case let s where s.hasPrefix("explicit:"): return .explicit(Int(s.dropFirst(9)) ?? 0)
            default: return .valid
            }
        }
    }

    struct FixtureFile: Decodable { let cases: [Case] }

    static let cases: [Case] = {
        guard let url = Bundle.module.url(forResource: "kernels", withExtension: "json", subdirectory: "Fixtures"),
              let data = try? Data(contentsOf: url),
              let file = try? JSONDecoder().decode(FixtureFile.self, from: data) else { return [] }
        return file.cases
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 70, "Fixtures/kernels.json missing or unreadable: run scripts/make_kernel_fixtures.py")
        let ops = Set(Self.cases.map(\.op))
        #expect(ops.isSuperset(of: ["resizeNearest", "resizeBilinear", "maxPool2D", "avgPool2D", "globalAveragePool",
                                    "conv2d", "depthwiseConv2d", "conv2dBN", "depthwiseConv2dBN", "squeezeExcite"]))
    }

    @Test(arguments: cases)
    func matchesTorch(_ fixture: Case) throws {
        let p = fixture.params
        let input = try fixture.tensor("input")
        let expected = try fixture.tensor("output")
        let actual: Tensor
        switch fixture.op {
        case "resizeNearest":
            actual = try resizeNearest(input, height: p.outHeight ?? 0, width: p.outWidth ?? 0)
        case "resizeBilinear":
            actual = try resizeBilinear(input, height: p.outHeight ?? 0, width: p.outWidth ?? 0, alignCorners: p.alignCorners ?? false)
        case "maxPool2D":
            actual = try maxPool2D(input, kernel: p.kernel ?? 0, stride: p.stride ?? 0, padding: fixture.paddingMode)
        case "avgPool2D":
            actual = try avgPool2D(input, kernel: p.kernel ?? 0, stride: p.stride ?? 0, padding: fixture.paddingMode,
                                   countIncludePad: p.countIncludePad ?? true)
        case "globalAveragePool":
            actual = try globalAveragePool(input)
        case "conv2d":
            actual = try Conv2D(weight: fixture.tensor("weight"), bias: fixture.tensor("bias"), stride: p.stride ?? 1,
                                dilation: p.dilation ?? 1, padding: fixture.paddingMode)(input)
        case "depthwiseConv2d":
            actual = try DepthwiseConv2D(weight: fixture.tensor("weight"), bias: fixture.tensor("bias"), stride: p.stride ?? 1,
                                         dilation: p.dilation ?? 1, padding: fixture.paddingMode)(input)
        case "conv2dBN", "depthwiseConv2dBN":
            let bn = try BatchNorm(weight: fixture.tensor("bnWeight").scalars, bias: fixture.tensor("bnBias").scalars,
                                   runningMean: fixture.tensor("bnMean").scalars, runningVar: fixture.tensor("bnVar").scalars,
                                   eps: p.eps ?? 1e-5)
            let activation = Activation(rawValue: p.activation ?? "identity") ?? .identity
            if fixture.op == "conv2dBN" {
                actual = try Conv2D(weight: fixture.tensor("weight"), padding: fixture.paddingMode, activation: activation).folding(bn)(input)
            } else {
                actual = try DepthwiseConv2D(weight: fixture.tensor("weight"), padding: fixture.paddingMode, activation: activation).folding(bn)(input)
            }
        case "squeezeExcite":
            actual = try SqueezeExcite(reduceWeight: fixture.tensor("reduceWeight"), reduceBias: fixture.tensor("reduceBias"),
                                       expandWeight: fixture.tensor("expandWeight"), expandBias: fixture.tensor("expandBias"),
                                       activation: .silu)(input)
        case "softmaxChannels":
            actual = try softmaxChannels(input)
        case "sigmoid":
            actual = sigmoid(input)
        case "argmaxChannels":
            let labels = try argmaxChannels(input)
            #expect(labels.map(Float.init) == expected.scalars)
            return
        default:
            Issue.record("unknown fixture op \(fixture.op)")
            return
        }
        #expect(actual.shape == expected.shape)
        #expect(maxRelativeError(actual, expected) <= 1e-5, "\(fixture.name): max error \(maxRelativeError(actual, expected))")
    }
}

import EffCore
import EffDense
import EffWeights
import Foundation
import Testing

/// EfficientNet against timm, lukemelas and the Lite0 reference on checkpoints they wrote
/// (scripts/make_backbone_fixtures.py): features at every stride and logits, within 1e-4
/// absolute or 1e-3 relative.
@Suite struct BackboneParityTests {
    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: "Tests/EffDenseTests/Fixtures")
    static func path(_ name: String) -> String { fixtures.appendingPathComponent("backbone/" + name).path }

    /// The narrow test models: (fixture, flavour, lite).
    static let narrowModels: [(String, EfficientNetArchitecture.Flavour, Bool)] = [
        ("tf_b0", .tensorflow, false), ("pt_b0", .pytorch, false), ("tf_lite0", .tensorflow, true), ("lukemelas_b0", .tensorflow, false),
    ]

    static func narrowArchitecture(_ flavour: EfficientNetArchitecture.Flavour, lite: Bool) -> EfficientNetArchitecture {
        EfficientNetArchitecture(width: 0.5, depth: 0.34, flavour: flavour, isLite: lite, numClasses: 10)
    }

    /// Loads a model strictly: every key bound with its shape, none left over.
    static func load(_ name: String, _ architecture: EfficientNetArchitecture, outputStride: Int = 32) throws -> EfficientNet {
        let store = try WeightStore(contentsOf: path(name + ".pth"))
        let binder = WeightBinder(store)
        let model = try EfficientNet(architecture: architecture, outputStride: outputStride, weights: binder,
                                     keys: EfficientNetKeys(for: store.layout))
        try binder.finish()
        return model
    }

    @Test(arguments: narrowModels.map(\.0))
    func featuresAndLogitsMatchTheReference(_ name: String) throws {
        let (_, flavour, lite) = try #require(Self.narrowModels.first { $0.0 == name })
        let model = try Self.load(name, Self.narrowArchitecture(flavour, lite: lite))
        let io = try WeightStore(contentsOf: Self.path(name + ".io.safetensors"))
        for input in ["input_75x61", "input_64x64"] {
            let x = try nhwc(io.tensor(input))
            let features = try model.features(x)
            #expect(features.count == 5)
            for (i, feature) in features.enumerated() {
                let expected = try nhwc(io.tensor("\(input).os32.feature\(i)"))
                expectClose(feature, expected, "\(name) \(input) feature \(i) (stride \(EfficientNet.featureStrides[i]))")
            }
            expectClose(try model.logits(x), try io.tensor("\(input).logits"), "\(name) \(input) logits")
        }
    }

    @Test(arguments: [16, 8])
    func dilatedOutputStridesMatchTimm(_ outputStride: Int) throws {
        let model = try Self.load("tf_b0", Self.narrowArchitecture(.tensorflow, lite: false), outputStride: outputStride)
        let io = try WeightStore(contentsOf: Self.path("tf_b0.io.safetensors"))
        let features = try model.features(nhwc(io.tensor("input_75x61")))
        for (i, feature) in features.enumerated() {
            let expected = try nhwc(io.tensor("input_75x61.os\(outputStride).feature\(i)"))
            expectClose(feature, expected, "output stride \(outputStride) feature \(i)")
        }
        #expect(features[4].shape[1] == (outputStride == 16 ? 5 : 10), "spatial size at output stride \(outputStride)")
    }

    @Test func realLite0LogitsMatchItsReferenceImplementation() throws {
        let real = try #require(realLite0Path(), "run scripts/fetch-weights.sh first")
        let store = try WeightStore(contentsOf: real)
        #expect(store.layout == .lukemelas)
        let binder = WeightBinder(store)
        let model = try EfficientNet(architecture: EfficientNetArchitecture(width: 1, depth: 1, flavour: .tensorflow, isLite: true),
                                     weights: binder, keys: EfficientNetKeys(for: store.layout))
        try binder.finish()
        #expect(model.featureChannels == [16, 24, 40, 112, 320])
        let io = try WeightStore(contentsOf: Self.path("lite0_chelsea.io.safetensors"))
        expectClose(try model.logits(nhwc(io.tensor("input"))), try io.tensor("logits"), "real Lite0 logits on chelsea.png")
    }

    @Test func architectureTableMatchesTheReferenceNumbers() throws {
        // B0: channels and repeats of timm's efficientnet_b0.
        let b0 = EfficientNetArchitecture(width: 1, depth: 1, flavour: .tensorflow)
        let blocks = try b0.blocks()
        #expect(blocks.count == 16)
        #expect(blocks.filter(\.isFeature).map(\.outChannels) == [16, 24, 40, 112, 320])
        #expect(b0.scaledHeadChannels == 1280 && b0.scaledStemChannels == 32)
        // B4 (1.4, 1.8) and B7 (2.0, 3.1): stem, head, features, block count as timm builds them.
        let b4 = EfficientNetArchitecture(width: 1.4, depth: 1.8, flavour: .tensorflow)
        #expect(b4.scaledStemChannels == 48 && b4.scaledHeadChannels == 1792)
        #expect(try b4.blocks().filter(\.isFeature).map(\.outChannels) == [24, 32, 56, 160, 448])
        #expect(try b4.blocks().count == 32)
        let b7 = EfficientNetArchitecture(width: 2.0, depth: 3.1, flavour: .tensorflow)
        #expect(try b7.blocks().filter(\.isFeature).map(\.outChannels) == [32, 48, 80, 224, 640])
        #expect(try b7.blocks().count == 55)
        // Lite4 (1.4, 1.8): stem and head fixed, first and last stage repeats fixed.
        let lite4 = EfficientNetArchitecture(width: 1.4, depth: 1.8, flavour: .tensorflow, isLite: true)
        #expect(lite4.scaledStemChannels == 32 && lite4.scaledHeadChannels == 1280)
        #expect(try lite4.blocks().filter { $0.stage == 0 || $0.stage == 6 }.count == 2)
        #expect(throws: TensorError.self) { try b0.blocks(outputStride: 4) }
    }

    @Test func wrongWeightsNameTheFirstMissingOrMismatchedKey() throws {
        // The PyTorch-native narrow checkpoint for a full-width B0: shapes differ at the stem.
        let store = try WeightStore(contentsOf: Self.path("pt_b0.pth"))
        #expect(throws: WeightsError(.shapeMismatch, store.file, "key 'conv_stem.weight' has shape [16, 3, 3, 3], the model expects [32, 3, 3, 3]")) {
            try EfficientNet(architecture: EfficientNetArchitecture(width: 1, depth: 1, flavour: .pytorch),
                             weights: WeightBinder(store), keys: EfficientNetKeys(for: store.layout))
        }
        // A timm checkpoint read with lukemelas names: the first key is missing.
        #expect(throws: WeightsError.self) {
            try EfficientNet(architecture: Self.narrowArchitecture(.tensorflow, lite: false),
                             weights: WeightBinder(store), keys: EfficientNetKeys(layout: .lukemelas))
        }
    }
}

func realLite0Path() -> String? {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("weights/efficientnet-lite0-57934424.pth").path
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// NCHW (as torch stores it) to NHWC.
func nhwc(_ t: Tensor) throws -> Tensor {
    let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
    var out = Tensor(uninitialized: [n, h, w, c])
    t.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            for b in 0..<n { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                dst[((b * h + y) * w + x) * c + ch] = src[((b * c + ch) * h + y) * w + x]
            } } } }
        }
    }
    return out
}

/// Every element within 1e-4 absolute or 1e-3 relative of the reference.
func expectClose(_ actual: Tensor, _ expected: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.shape == expected.shape else {
        Issue.record("\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        return
    }
    let a = actual.scalars, e = expected.scalars
    var bad = 0, worst = 0.0
    for i in 0..<a.count {
        let diff = Double(abs(a[i] - e[i]))
        if !(diff <= 1e-4 || diff <= 1e-3 * Double(abs(e[i]))) { bad += 1 }
        worst = max(worst, diff)
    }
    #expect(bad == 0, "\(what): \(bad) of \(a.count) values off, largest difference \(worst)", sourceLocation: sourceLocation)
}

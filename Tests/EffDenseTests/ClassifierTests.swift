import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation
import Testing

/// The real ImageNet EfficientNet-Lite0 on the sample photos against its reference
/// implementation with timm's pre-processing (Fixtures/backbone/lite0_samples.json).
@Suite struct ClassifierTests {
    struct Reference: Decodable { let class_index: Int; let label: String; let score: Double }
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func samplePhotosGetTheReferenceTopFive() throws {
        let weights = try #require(realLite0Path(), "run scripts/fetch-weights.sh first")
        let data = try Data(contentsOf: BackboneParityTests.fixtures.appendingPathComponent("backbone/lite0_samples.json"))
        let reference = try JSONDecoder().decode([String: [Reference]].self, from: data)
        #expect(reference.count == 4)
        let labels = try ProjectFiles.labels(Self.root.appendingPathComponent("configs/imagenet_classes.txt").path)
        let classifier = try ImageClassifier(model: .named("tf_efficientnet_lite0"), weightsFile: weights, labels: labels)
        for (sample, expected) in reference {
            let image = try ImageCodec.decode(contentsOf: Self.root.appendingPathComponent("samples/" + sample).path)
            let predictions = try classifier.classify(image, top: 5)
            #expect(predictions.map(\.classIndex) == expected.map(\.class_index), "\(sample)")
            #expect(predictions.map(\.label) == expected.map(\.label), "\(sample)")
            for (p, e) in zip(predictions, expected) {
                #expect(abs(Double(p.score) - e.score) < 0.01, "\(sample) \(e.label): \(p.score) vs \(e.score)")
            }
        }
    }

    @Test func preprocessingMatchesTimmOnChelsea() throws {
        // The network input built by effdense equals the one timm's transform built (stored
        // in lite0_chelsea.io.safetensors), up to float rounding of the normalisation.
        let io = try WeightStore(contentsOf: BackboneParityTests.path("lite0_chelsea.io.safetensors"))
        let image = try ImageCodec.decode(contentsOf: Self.root.appendingPathComponent("samples/chelsea.png").path)
        let input = try ClassificationModel.named("tf_efficientnet_lite0").preprocessing.tensor(for: image)
        expectClose(input, try nhwc(io.tensor("input")), "pre-processed chelsea.png")
    }

    @Test func modelNamesFollowTheReferenceLibraries() throws {
        #expect(try ClassificationModel.named("tf_efficientnet_b3").architecture.widthMultiplier == 1.2)
        #expect(try ClassificationModel.named("tf_efficientnet_b3").preprocessing.inputSize == 300)
        #expect(try ClassificationModel.named("efficientnet_b0").architecture.flavour == .pytorch)
        #expect(try ClassificationModel.named("efficientnet-b5").architecture.flavour == .tensorflow)
        #expect(try ClassificationModel.named("tf_efficientnet_lite2").preprocessing.mean == [0.5, 0.5, 0.5])
        #expect(throws: TensorError.self) { try ClassificationModel.named("tf_efficientnet_b8") }
        #expect(throws: TensorError.self) { try ClassificationModel.named("resnet50") }
    }

    /// The README's library example, verbatim apart from paths.
    @Test func readmeLibraryExampleRuns() throws {
        let weightsPath = try #require(realLite0Path())
        let photoPath = Self.root.appendingPathComponent("samples/coffee.jpg").path

        // --- README example ---
        let store = try WeightStore(contentsOf: weightsPath)
        let binder = WeightBinder(store)
        let backbone = try EfficientNet(
            architecture: ClassificationModel.named("tf_efficientnet_lite0").architecture,
            outputStride: 16,                                   // dilate the last stages, as DeepLab does
            weights: binder, keys: EfficientNetKeys(for: store.layout), includeClassifier: false)
        let image = try ImageCodec.decode(contentsOf: photoPath)
        let input = try image.tensor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])   // [1, H, W, 3]
        let features = try backbone.features(input)              // strides 2, 4, 8, 16, 16
        for (feature, channels) in zip(features, backbone.featureChannels) {
            print(feature.shape, channels)                       // [1, H/s, W/s, C]
        }
        // --- end ---

        #expect(features.map { $0.shape[3] } == [16, 24, 40, 112, 320])
        #expect(features.map { $0.shape[1] } == [200, 100, 50, 25, 25])  // coffee.jpg is 600 x 400
        #expect(binder.unusedNames.allSatisfy { $0.hasPrefix("_conv_head") || $0.hasPrefix("_bn1") || $0.hasPrefix("_fc") })
    }
}

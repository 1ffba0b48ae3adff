import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation
import Testing

/// What bfloat16 (`Precision.withPrecision(.bfloat16)`) changes in the answers, against float32:
/// the tolerances here are bf16's own (8-bit significands in every convolution's operands),
/// measured on these models and fixed with a margin; float32's parity tolerances are untouched.
@Suite struct BFloat16AccuracyTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let samples = ["astronaut.jpg", "chelsea.png", "coffee.jpg", "rocket.jpg"]

    static func sample(_ name: String) throws -> RGBImage {
        try ImageCodec.decode(contentsOf: root.appendingPathComponent("samples/" + name).path)
    }

    /// The real ImageNet Lite0: the same top five, in the same order, on every sample photo;
    /// probabilities within 0.02 (measured: 0.007 at most).
    @Test func realLite0KeepsItsTopFive() throws {
        let weights = try #require(realLite0Path(), "run scripts/fetch-weights.sh first")
        let labels = try ProjectFiles.labels(Self.root.appendingPathComponent("configs/imagenet_classes.txt").path)
        let classifier = try ImageClassifier(model: .named("tf_efficientnet_lite0"), weightsFile: weights, labels: labels)
        for name in Self.samples {
            let image = try Self.sample(name)
            let float32 = try classifier.classify(image, top: 5)
            let bfloat16 = try Precision.withPrecision(.bfloat16) { try classifier.classify(image, top: 5) }
            #expect(bfloat16.map(\.classIndex) == float32.map(\.classIndex), "\(name)")
            for (b, f) in zip(bfloat16, float32) { #expect(abs(b.score - f.score) < 0.02, "\(name) \(f.label): \(b.score) vs \(f.score)") }
        }
    }

    /// EfficientDet-D0 (effdet's key layout, seeded weights) on the parity fixture's canvas: every
    /// raw class and box output within 2% of the largest magnitude of effdet's float32 values at
    /// its level (measured: 0.4% at most).
    @Test func efficientDetOutputsStayCloseToEffdets() throws {
        let config = try DetectionConfig.load(contentsOf: Self.root.appendingPathComponent("configs/tf_efficientdet_d0.yaml").path)
        let detector = try ObjectDetector(config: config, weightsFile: DetectionParityTests.fixture("tf_efficientdet_d0.pth"))
        let io = try WeightStore(contentsOf: DetectionParityTests.fixture("tf_efficientdet_d0.io.safetensors"))
        let (canvas, _) = try detector.preprocessing.letterbox(try Self.sample("astronaut.jpg"))
        let (classes, boxes) = try Precision.withPrecision(.bfloat16) { try detector.network(canvas.tensor(mean: config.mean, std: config.std)) }
        for level in 0..<5 {
            let reference = try io.tensor("astronaut.box\(level)").scalars, ours = boxes[level].scalars
            let scale = reference.map(abs).max() ?? 1
            let worst = zip(ours, reference).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 0.02 * scale, "box level \(level + 3): \(worst) of \(scale)")
            if level >= 3 {
                let referenceClasses = try io.tensor("astronaut.class\(level)").scalars, ourClasses = classes[level].scalars
                let classScale = referenceClasses.map(abs).max() ?? 1
                let classWorst = zip(ourClasses, referenceClasses).map { abs($0 - $1) }.max() ?? 0
                #expect(classWorst <= 0.02 * classScale, "class level \(level + 3): \(classWorst) of \(classScale)")
            }
        }
    }

    /// The trained DeepLabV3+ b0 (tiling fixture): at least 99.8% of each sample's mask pixels
    /// as in float32 (measured: 99.94–99.98%).
    @Test func deepLabMasksAgreeWithFloat32() throws {
        let segmenter = try Segmenter(encoder: "efficientnet-b0", weightsFile: BackboneParityTests.fixtures
            .appendingPathComponent("segmentation/deeplabv3plus_b0_colours.safetensors").path, numClasses: 4)
        for name in Self.samples {
            let image = try Self.sample(name)
            let float32 = try segmenter.segment(image)
            let bfloat16 = try Precision.withPrecision(.bfloat16) { try segmenter.segment(image) }
            let same = zip(float32.classes, bfloat16.classes).filter { $0 == $1 }.count
            let agreement = Double(same) / Double(float32.classes.count)
            #expect(agreement >= 0.998, "\(name): \(agreement)")
        }
    }
}

import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation
import Testing

/// DeepLabV3+ against segmentation_models_pytorch (scripts/make_segmentation_fixtures.py):
/// logits within 1e-4 abs / 1e-3 rel, argmax equal wherever the top two logits differ by > 1e-3.
@Suite struct SegmentationParityTests {
    static func fixture(_ name: String) -> String { BackboneParityTests.fixtures.appendingPathComponent("segmentation/" + name).path }

    struct Case: CustomTestStringConvertible, Sendable {
        let encoder: String, outputStride: Int, size: String
        var testDescription: String { "\(encoder) OS\(outputStride) \(size)" }
    }
    static let cases = [Case(encoder: "efficientnet-b0", outputStride: 16, size: "160x112"),
                        Case(encoder: "efficientnet-b0", outputStride: 16, size: "150x100"),
                        Case(encoder: "efficientnet-b0", outputStride: 8, size: "160x112"),
                        Case(encoder: "timm-efficientnet-b0", outputStride: 16, size: "160x112"),
                        Case(encoder: "timm-efficientnet-b0", outputStride: 16, size: "150x100")]

    @Test(arguments: cases)
    func matchesSMP(_ c: Case) throws {
        let key = c.encoder.replacingOccurrences(of: "-", with: "_")
        let segmenter = try Segmenter(encoder: c.encoder, weightsFile: Self.fixture("deeplabv3plus_\(key).pth"), numClasses: 21,
                                      outputStride: c.outputStride)
        let io = try WeightStore(contentsOf: Self.fixture("deeplabv3plus_\(key).io.safetensors"))
        let input = try nhwc(io.tensor("input_\(c.size)"))
        // The stored input is the fixture PNG normalised: effdense's own pre-processing gives it.
        let png = try ImageCodec.decode(contentsOf: Self.fixture("chelsea_\(c.size).png"))
        expectClose(try png.tensor(mean: segmenter.mean, std: segmenter.std), input, "\(c) normalised input")

        let logits = try segmenter.logits(input)
        let expected = try nhwc(io.tensor("os\(c.outputStride).logits_\(c.size)"))
        expectClose(logits, expected, "\(c) logits")

        let ours = try argmaxChannels(logits), reference = try argmaxChannels(expected)
        let values = expected.scalars, classes = expected.shape[3]
        // The whole pipeline on the picture (its own normalisation) gives the same mask too.
        let mask = try segmenter.segment(png)
        #expect(mask.width == png.width && mask.height == png.height)
        var compared = 0, differing = 0, pipelineDiffering = 0
        for pixel in 0..<ours.count {
            let row = values[(pixel * classes)..<((pixel + 1) * classes)].sorted(by: >)
            guard row[0] - row[1] > 1e-3 else { continue }
            compared += 1
            if ours[pixel] != reference[pixel] { differing += 1 }
            if Int32(mask.classes[pixel]) != reference[pixel] { pipelineDiffering += 1 }
        }
        #expect(pipelineDiffering == 0, "\(c): the pipeline's mask differs on \(pipelineDiffering) unambiguous pixels")
        #expect(differing == 0, "\(c): \(differing) of \(compared) unambiguous pixels get another class")
        #expect(compared > ours.count * 9 / 10)
        #expect(Set(reference).count > 5, "the fixture's mask should hold many classes")
    }

    @Test func encoderTablesFollowSMP() throws {
        let b0 = try SegmentationEncoder.named("efficientnet-b0")
        #expect(b0.featureBlocks == [2, 4, 8, 15] && b0.stage16Start == 5 && b0.stage32Start == 9)
        let timm = try SegmentationEncoder.named("timm-efficientnet-b0")
        #expect(timm.featureBlocks == [2, 4, 10, 15] && timm.stage16Start == 5 && timm.stage32Start == 11)
        #expect(timm.architecture.flavour == .pytorch && b0.architecture.flavour == .tensorflow)
        #expect(throws: ConfigError.self) { try SegmentationEncoder.named("resnet34") }
        #expect(Segmenter.vocPalette[1] == (128, 0, 0) && Segmenter.vocPalette[15] == (192, 128, 128) && Segmenter.vocPalette[255] == (224, 224, 192))
    }
}

@Suite struct SegmentationConfigTests {
    @Test func shippedConfigHoldsSMPsDefaults() throws {
        let config = try SegmentationConfig.load(contentsOf: DetectionParityTests.root.appendingPathComponent("configs/deeplabv3plus.yaml").path)
        #expect(config.encoder == "efficientnet-b0" && config.numClasses == 21 && config.outputStride == 16)
        #expect(config.atrousRates == [12, 24, 36] && config.decoderChannels == 256 && config.upsampling == 4)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-segcfg-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: folder) }
        try "name: x\nencoder: efficientnet-b0\nnum_classes: 3\noutput_stride: 4\n".write(to: folder, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try SegmentationConfig.load(contentsOf: folder.path) }
    }
}

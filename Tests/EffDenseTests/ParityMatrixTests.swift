import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation
import Testing

/// The parity matrix (scripts/make_parity_matrix.py, Fixtures/matrix/matrix.json): every row is a
/// model family effdense names, built and run by its reference library on a checkpoint that
/// library saved. Narrow widths (the script says which); depth, kernels, strides, static padding,
/// dilation and feature blocks are the named model's own. Logits within 1e-4 abs / 1e-3 rel;
/// masks equal wherever the reference's top two logits differ by more than 1e-3.
@Suite struct ParityMatrixTests {
    static let folder = BackboneParityTests.fixtures.appendingPathComponent("matrix")

    struct Row: Decodable, CustomTestStringConvertible, Sendable {
        struct Case: Decodable, Sendable {
            let input: String
            let output_stride: Int?
        }
        let kind: String, name: String, width_scale: Double, classes: Int, checkpoint: String, io: String
        let decoder_channels: Int?, fpn_channels: Int?
        let cases: [Case]
        /// The folder the row's files are in.
        var folder = ""
        var testDescription: String { "\(kind) \(name)\(width_scale == 1 ? " (full size)" : "")" }
        enum CodingKeys: CodingKey { case kind, name, width_scale, classes, checkpoint, io, decoder_channels, fpn_channels, cases }
    }

    /// The committed rows, plus (on demand) the full-size rows written by
    /// `scripts/make_parity_matrix.py --full ... --out DIR` when EFFDENSE_PARITY_FULL=DIR is set.
    static let rows: [Row] = {
        var folders = [folder]
        if let full = ProcessInfo.processInfo.environment["EFFDENSE_PARITY_FULL"] { folders.append(URL(fileURLWithPath: full)) }
        return folders.flatMap { folder -> [Row] in
            guard let data = try? Data(contentsOf: folder.appendingPathComponent("matrix.json")),
                  let matrix = try? JSONDecoder().decode([String: [Row]].self, from: data) else { return [] }
            return (matrix["rows"] ?? []).map { row in
                var row = row
                row.folder = folder.path
                return row
            }
        }
    }()

    /// effdet's EfficientDet on samples/coffee.jpg: the letterboxed canvas (sampled bytes), the raw
    /// outputs of all levels (sampled), and DetBenchPredict's detections.
    static func checkDetector(_ row: Row, checkpoint: String, io: WeightStore) throws {
        var config = try DetectionConfig.named(row.name).config
        var backbone = try ClassificationModel.named(config.backbone).architecture
        if row.width_scale != 1 {
            backbone.widthMultiplier *= row.width_scale
            config.fpnChannels = try #require(row.fpn_channels)
            config.numClasses = row.classes
        }
        let binder = WeightBinder(try WeightStore(contentsOf: checkpoint))
        let detector = ObjectDetector(config: config, network: try EfficientDet(config: config, backbone: backbone, weights: binder))
        try binder.finish()

        let image = try ImageCodec.decode(contentsOf: DetectionParityTests.root.appendingPathComponent("samples/coffee.jpg").path)
        let (canvas, imageScale) = try detector.preprocessing.letterbox(image)
        #expect(canvas.width == config.imageSize[1] && canvas.height == config.imageSize[0])
        let canvasIndex = try io.integers("canvas.index"), canvasValue = try io.integers("canvas.value")
        let differingBytes = zip(canvasIndex, canvasValue).filter { Int64(canvas.pixels[Int($0.0)]) != $0.1 }.count
        #expect(differingBytes == 0, "\(row.name): \(differingBytes) of \(canvasIndex.count) sampled canvas bytes differ")
        let referenceScale = try io.tensor("img_scale").scalars[0]
        #expect(Float(imageScale) == referenceScale)

        let (classes, boxes) = try detector.network(canvas.tensor(mean: config.mean, std: config.std))
        for (outputs, name) in [(classes, "class"), (boxes, "box")] {
            let flat = outputs.flatMap(\.scalars)
            #expect(Int64(flat.count) == (try io.integers("\(name).count"))[0], "\(row.name) \(name) outputs")
            let index = try io.integers("\(name).index").map { Int($0) }
            guard index.allSatisfy({ $0 < flat.count }) else { continue }
            expectClose(try Tensor(shape: [index.count], values: index.map { flat[$0] }), try io.tensor("\(name).value"),
                        "\(row.name) \(name) outputs (sampled)")
        }
        let ours = try PostProcessing().detections(
            classes: classes, boxes: boxes, anchors: detector.anchors, numClasses: config.numClasses, imageScale: referenceScale,
            clipSize: (Float(image.width) / referenceScale, Float(image.height) / referenceScale))
        let reference = effdetDetections(try io.tensor("detections").scalars)
        #expect(ours.count == reference.count)
        expectSameDetections(ours, reference, row.name)
    }

    @Test func matrixCoversEveryNamedFamily() {
        let names = Set(Self.rows.map { "\($0.kind) \($0.name)" })
        for b in 0..<8 {
            for expected in ["smp efficientnet-b\(b)", "smp timm-efficientnet-b\(b)", "lukemelas efficientnet-b\(b)",
                             "torchvision efficientnet_b\(b)", "effdet tf_efficientdet_d\(b)"] {
                #expect(names.contains(expected), "the matrix lacks \(expected)")
            }
        }
        for expected in ["effdet tf_efficientdet_d7x", "effdet efficientdet_d0", "effdet efficientdet_d1"]
            + (0..<5).flatMap({ ["effdet tf_efficientdet_lite\($0)", "lukemelas efficientnet-lite\($0)"] }) {
            #expect(names.contains(expected), "the matrix lacks \(expected)")
        }
        #expect(Self.rows.filter { $0.kind == "smp" }.allSatisfy { Set($0.cases.compactMap(\.output_stride)) == [8, 16] })
    }

    @Test(arguments: rows)
    func rowMatchesItsReference(_ row: Row) throws {
        let folder = URL(fileURLWithPath: row.folder)
        let checkpoint = folder.appendingPathComponent(row.checkpoint).path
        let io = try WeightStore(contentsOf: folder.appendingPathComponent(row.io).path)
        switch row.kind {
        case "smp":
            var encoder = try SegmentationEncoder.named(row.name)
            encoder.architecture.widthMultiplier *= row.width_scale
            for c in row.cases {
                let outputStride = try #require(c.output_stride)
                let segmenter = try Segmenter(encoder: encoder, weightsFile: checkpoint, numClasses: row.classes,
                                              outputStride: outputStride, decoderChannels: row.decoder_channels ?? 256)
                let logits = try segmenter.logits(nhwc(io.tensor("input_\(c.input)")))
                let expected = try nhwc(io.tensor("os\(outputStride).logits_\(c.input)"))
                let what = "\(row.name) OS\(outputStride) \(c.input)"
                expectClose(logits, expected, what)
                expectSameMask(logits, expected, what)
            }
        case "lukemelas", "torchvision":
            // torchvision's state dicts are named as torchvision names its models (efficientnet_bN):
            // the layout picks torchvision's variant.
            var model = try ClassificationModel.named(row.name)
            model.architecture.widthMultiplier *= row.width_scale
            let classifier = try ImageClassifier(model: model, weightsFile: checkpoint, labels: [])
            for c in row.cases {
                let logits = try classifier.network.logits(nhwc(io.tensor("input_\(c.input)")))
                expectClose(logits, try io.tensor("logits_\(c.input)"), "\(row.name) \(c.input)")
            }
            if row.kind == "torchvision" {
                // torchvision's own IMAGENET1K_V1 pre-processing of this level (resize, crop, bicubic).
                let photo = try ImageCodec.decode(contentsOf: DetectionParityTests.root.appendingPathComponent("samples/chelsea.png").path)
                let ours = try nhwcToNCHW(classifier.preprocessing.tensor(for: photo))
                #expect(ours.shape == (try io.integers("preprocessed.shape")).map { Int($0) }, "\(row.name) pre-processed size")
                let index = try io.integers("preprocessed.index").map { Int($0) }
                let values = ours.scalars
                if index.allSatisfy({ $0 < values.count }) {
                    expectClose(try Tensor(shape: [index.count], values: index.map { values[$0] }), try io.tensor("preprocessed.value"),
                                "\(row.name) torchvision pre-processing (sampled)")
                }
            }
        case "effdet":
            try Self.checkDetector(row, checkpoint: checkpoint, io: io)
        default:
            Issue.record("unknown matrix row kind \(row.kind)")
        }
    }
}

/// Argmax over channels equal wherever the reference's top two logits differ by more than 1e-3.
func expectSameMask(_ logits: Tensor, _ expected: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let ours = try? argmaxChannels(logits), let reference = try? argmaxChannels(expected), ours.count == reference.count else {
        Issue.record("\(what): no mask to compare", sourceLocation: sourceLocation)
        return
    }
    let values = expected.scalars, classes = expected.shape[expected.shape.count - 1]
    var differing = 0
    for pixel in 0..<ours.count where ours[pixel] != reference[pixel] {
        let row = values[(pixel * classes)..<((pixel + 1) * classes)].sorted(by: >)
        if row[0] - row[1] > 1e-3 { differing += 1 }
    }
    #expect(differing == 0, "\(what): \(differing) unambiguous pixels get another class", sourceLocation: sourceLocation)
}

/// NHWC → NCHW (the reference's layout).
func nhwcToNCHW(_ t: Tensor) throws -> Tensor {
    let (n, h, w, c) = try t.requireNHWC("nhwcToNCHW")
    let source = t.scalars
    var values = [Float](repeating: 0, count: source.count)
    for b in 0..<n { for y in 0..<h { for x in 0..<w { for ch in 0..<c {
        values[((b * c + ch) * h + y) * w + x] = source[((b * h + y) * w + x) * c + ch]
    } } } }
    return try Tensor(shape: [n, c, h, w], values: values)
}

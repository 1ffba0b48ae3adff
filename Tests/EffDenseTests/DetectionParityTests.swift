import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation
import Testing

/// EfficientDet against effdet (scripts/make_detection_fixtures.py): seeded random weights in
/// the official key layout saved by torch.save, a square and a non-square picture.
@Suite struct DetectionParityTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func fixture(_ name: String) -> String { BackboneParityTests.fixtures.appendingPathComponent("detection/" + name).path }

    struct Case: CustomTestStringConvertible, Sendable {
        let model: String, image: String
        var testDescription: String { "\(model) on \(image)" }
    }
    static let cases = ["tf_efficientdet_d0", "efficientdet_d0"].flatMap { m in ["astronaut.jpg", "coffee.jpg"].map { Case(model: m, image: $0) } }

    @Test(arguments: cases)
    func matchesEffdet(_ c: Case) throws {
        let config = try DetectionConfig.load(contentsOf: Self.root.appendingPathComponent("configs/\(c.model).yaml").path)
        let detector = try ObjectDetector(config: config, weightsFile: Self.fixture("\(c.model).pth"))
        let io = try WeightStore(contentsOf: Self.fixture("\(c.model).io.safetensors"))
        let key = String(c.image.split(separator: ".")[0])

        // Pre-processing: the letterboxed canvas equals effdet's, pixel for pixel.
        let image = try ImageCodec.decode(contentsOf: Self.root.appendingPathComponent("samples/" + c.image).path)
        let (canvas, imageScale) = try detector.preprocessing.letterbox(image)
        #expect(canvas == (try ImageCodec.decode(contentsOf: Self.fixture(c.image + ".letterbox.png"))))
        let referenceScale = try io.tensor("\(key).img_scale").scalars[0]
        #expect(Float(imageScale) == referenceScale)

        // Raw outputs at every level.
        let (classes, boxes) = try detector.network(canvas.tensor(mean: config.mean, std: config.std))
        #expect(classes.count == 5 && boxes.count == 5)
        for level in 0..<5 {
            expectClose(boxes[level], try io.tensor("\(key).box\(level)"), "\(c) box level \(level + 3)")
            let values = classes[level].scalars
            if level < 3 {
                let index = try io.integers("\(key).class\(level).index").map { Int($0) }
                let sampled = try Tensor(shape: [index.count], values: index.map { values[$0] })
                expectClose(sampled, try io.tensor("\(key).class\(level).value"), "\(c) class level \(level + 3) (sampled)")
            } else {
                expectClose(try classes[level].reshaped([values.count]), try io.tensor("\(key).class\(level)"), "\(c) class level \(level + 3)")
            }
        }

        // Final detections: effdet's DetBenchPredict with img_scale and img_size.
        let ours = try PostProcessing().detections(
            classes: classes, boxes: boxes, anchors: detector.anchors, numClasses: config.numClasses, imageScale: referenceScale,
            clipSize: (Float(image.width) / referenceScale, Float(image.height) / referenceScale))
        let reference = effdetDetections(try io.tensor("\(key).detections").scalars)
        #expect(ours.count == 100 && reference.count == 100)
        expectSameDetections(ours, reference, "\(c)")
    }

    @Test func anchorsFollowEffdetsOrderAndSizes() throws {
        let config = try DetectionConfig.load(contentsOf: Self.root.appendingPathComponent("configs/tf_efficientdet_d0.yaml").path)
        let anchors = AnchorGrid(config: config)
        #expect(anchors.count == (64 * 64 + 32 * 32 + 16 * 16 + 8 * 8 + 4 * 4) * 9)
        // First anchor: level 3 (stride 8), centre (4, 4), scale 2^0, ratio (1, 1): size 4 * 8 = 32.
        #expect(Array(anchors.boxes[0..<4]) == [-12, -12, 20, 20])
        // Second: ratio (1.4, 0.7): half width 32 * 1.4 / 2 = 22.4, half height 32 * 0.7 / 2 = 11.2.
        #expect(abs(anchors.boxes[5] - (4 - 22.4)) < 1e-5 && abs(anchors.boxes[4] - (4 - 11.2)) < 1e-5)
        // Anchor 9 is the next column (x centre 12).
        #expect(anchors.boxes[9 * 4 + 1] == -4 && anchors.boxes[9 * 4 + 3] == 28)
    }

    /// Overflowing activations (with finite weights) give NaN / infinite box deltas or logits:
    /// those candidates are no detections, and nothing non-finite reaches the results.
    @Test func nonFiniteOutputsGiveNoDetections() throws {
        let config = try DetectionConfig.load(contentsOf: Self.root.appendingPathComponent("configs/tf_efficientdet_d0.yaml").path)
        let anchors = AnchorGrid(config: config)
        let sizes = config.featureSizes
        var classes: [Tensor] = [], boxes: [Tensor] = []
        for level in config.minLevel...config.maxLevel {
            let (h, w) = (sizes[level].height, sizes[level].width)
            classes.append(Tensor(zeros: [1, h, w, 9 * config.numClasses]))
            boxes.append(Tensor(zeros: [1, h, w, 9 * 4]))
        }
        // Anchor 0: NaN delta; anchor 1: infinite size; anchor 2: NaN logit; anchor 3: finite.
        classes[0].withUnsafeMutableBufferPointer { c in
            for anchor in 0..<4 { c[anchor * config.numClasses] = 5 }
            c[2 * config.numClasses] = .nan
        }
        boxes[0].withUnsafeMutableBufferPointer { b in
            b[0] = .nan
            b[1 * 4 + 2] = .infinity
        }
        for clip in [nil, (width: Float(512), height: Float(512))] as [(width: Float, height: Float)?] {
            let found = try PostProcessing(scoreThreshold: 0.5).detections(classes: classes, boxes: boxes, anchors: anchors,
                                                                           numClasses: config.numClasses, clipSize: clip)
            #expect(found.allSatisfy { $0.score.isFinite && $0.box.allSatisfy(\.isFinite) })
            // Clipped, the infinite box becomes the picture's height (as torch's clamp makes it).
            #expect(found.count == (clip == nil ? 1 : 2), "\(found)")
        }
    }

    @Test func hardAndSoftNMS() {
        let a = Detection(box: [0, 0, 10, 10], score: 0.9, classIndex: 1)
        let b = Detection(box: [1, 0, 11, 10], score: 0.8, classIndex: 1)   // IoU 0.818 with a
        let c = Detection(box: [1, 0, 11, 10], score: 0.7, classIndex: 2)   // other class: kept
        let d = Detection(box: [20, 20, 30, 30], score: 0.6, classIndex: 1) // no overlap: kept
        let hard = PostProcessing.hardNMS([d, b, c, a], iouThreshold: 0.5)
        #expect(hard == [a, c, d])
        let soft = PostProcessing.softNMS([d, b, c, a])
        #expect(soft.count == 4 && soft[0] == a)
        let decayed = soft.first { $0.box == b.box && $0.classIndex == 1 }
        #expect(abs((decayed?.score ?? 0) - 0.8 * expf(-(0.8181818 * 0.8181818) / 0.5)) < 1e-5)
    }
}

/// effdet's detections ([x1, y1, x2, y2, score, class + 1] rows) as Detections.
func effdetDetections(_ raw: [Float]) -> [Detection] {
    stride(from: 0, to: raw.count - 5, by: 6).map {
        Detection(box: Array(raw[$0..<($0 + 4)]), score: raw[$0 + 4], classIndex: Int(raw[$0 + 5]) - 1)
    }
}

/// Every reference detection has a counterpart (same class, IoU > 0.99, score within 1e-3) and
/// vice versa — except detections tied with the list's last score, whose membership at the
/// cut-off is decided by float rounding. Boxes clipped to zero area (their IoU is 0 / 0) match
/// when their corners agree within 0.01 pixel.
func expectSameDetections(_ ours: [Detection], _ reference: [Detection], _ what: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
    func matches(_ x: Detection, _ y: Detection) -> Bool {
        let sameBox = PostProcessingIoU.iou(x.box, y.box) > 0.99 || PostProcessingIoU.sameSegment(x.box, y.box)
            || zip(x.box, y.box).allSatisfy { abs($0 - $1) < 0.01 }
        return x.classIndex == y.classIndex && abs(x.score - y.score) < 1e-3 && sameBox
    }
    let cutoff = max(reference.last?.score ?? 0, ours.last?.score ?? 0) + 1e-5
    var missing = reference.filter { r in r.score > cutoff && !ours.contains { matches($0, r) } }
    var extra = ours.filter { o in o.score > cutoff && !reference.contains { matches(o, $0) } }
    // Two overlapping boxes of one class with the same score (to float precision, e.g. anchors
    // over a uniform patch): NMS keeps whichever sorts first, which float rounding decides. Such
    // a pair — the reference kept one, we kept the other — is not a difference.
    for r in missing {
        if let i = extra.firstIndex(where: { o in
            o.classIndex == r.classIndex && abs(o.score - r.score) <= 1e-6 && PostProcessingIoU.iou(o.box, r.box) > 0.5
        }) {
            extra.remove(at: i)
            missing.removeAll { $0.box == r.box && $0.score == r.score }
        }
    }
    #expect(missing.isEmpty && extra.isEmpty,
            "\(what): \(missing.count) reference detections unmatched (first \(String(describing: missing.first))), \(extra.count) extra (first \(String(describing: extra.first)))",
            sourceLocation: sourceLocation)
    #expect(reference.filter { $0.score > cutoff }.count >= reference.count * 8 / 10, "\(what): too many ties at the cut-off to check",
            sourceLocation: sourceLocation)
}

enum PostProcessingIoU {
    /// Boxes clipped to zero height or width (effdet keeps boxes lying wholly in the letterbox
    /// padding, clipped flat onto the picture's edge): the same when their flat side lies on the
    /// same line (within 0.01 pixel) and their extents along it overlap with 1-D IoU > 0.99.
    static func sameSegment(_ a: [Float], _ b: [Float]) -> Bool {
        func overlap(_ a0: Float, _ a1: Float, _ b0: Float, _ b1: Float) -> Float {
            let inter = max(0, min(a1, b1) - max(a0, b0)), union = max(a1, b1) - min(a0, b0)
            return union > 0 ? inter / union : 1
        }
        let flatY = a[3] - a[1] < 1e-4 && b[3] - b[1] < 1e-4, flatX = a[2] - a[0] < 1e-4 && b[2] - b[0] < 1e-4
        if flatY { return abs(a[1] - b[1]) < 0.01 && (flatX ? abs(a[0] - b[0]) < 0.01 : overlap(a[0], a[2], b[0], b[2]) > 0.99) }
        if flatX { return abs(a[0] - b[0]) < 0.01 && overlap(a[1], a[3], b[1], b[3]) > 0.99 }
        return false
    }

    static func iou(_ a: [Float], _ b: [Float]) -> Float {
        let areaA = (a[2] - a[0]) * (a[3] - a[1]), areaB = (b[2] - b[0]) * (b[3] - b[1])
        let w = max(0, min(a[2], b[2]) - max(a[0], b[0])), h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return w * h / (areaA + areaB - w * h)
    }
}

/// A user's own config with another class count: a 3-class head cut from the 90-class fixture
/// (class channel anchor · C + c) gives the same logits as the matching 90-class channels.
@Suite struct CustomConfigTests {
    @Test func threeClassConfigMatchesTheSlicedNinetyClassModel() throws {
        let root = DetectionParityTests.root
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-custom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let yaml = try String(contentsOfFile: root.appendingPathComponent("configs/tf_efficientdet_d0.yaml").path, encoding: .utf8)
            .replacingOccurrences(of: "num_classes: 90", with: "num_classes: 3")
            .replacingOccurrences(of: "labels: coco90_classes.txt", with: "labels: three.txt")
            .replacingOccurrences(of: "name: tf_efficientdet_d0", with: "name: my_three_class_detector")
        try yaml.write(to: folder.appendingPathComponent("three.yaml"), atomically: true, encoding: .utf8)
        try "cat\ndog\nbird\n".write(to: folder.appendingPathComponent("three.txt"), atomically: true, encoding: .utf8)

        let store = try WeightStore(contentsOf: DetectionParityTests.fixture("tf_efficientdet_d0.pth"))
        var tensors: [(String, Safetensors.Values)] = []
        for info in store.infos {
            if info.name.hasSuffix("num_batches_tracked") { continue }
            var tensor = try store.tensor(info.name)
            if info.name.hasPrefix("class_net.predict.conv_pw.") {
                let rows = (0..<9).flatMap { anchor in (0..<3).map { anchor * 90 + $0 } }
                let width = tensor.count / tensor.shape[0]
                let values = tensor.scalars
                tensor = try Tensor(shape: [27] + tensor.shape.dropFirst(), values: rows.flatMap { values[($0 * width)..<(($0 + 1) * width)] })
            }
            tensors.append((info.name, .float(tensor)))
        }
        let weights = folder.appendingPathComponent("three.safetensors").path
        try Safetensors.write(tensors, to: weights)

        let config = try DetectionConfig.load(contentsOf: folder.appendingPathComponent("three.yaml").path)
        #expect(config.numClasses == 3 && config.name == "my_three_class_detector")
        let three = try ObjectDetector(config: config, weightsFile: weights, labels: ["cat", "dog", "bird"])
        let full = try ObjectDetector(config: DetectionConfig.load(contentsOf: root.appendingPathComponent("configs/tf_efficientdet_d0.yaml").path),
                                      weightsFile: DetectionParityTests.fixture("tf_efficientdet_d0.pth"))
        let canvas = try ImageCodec.decode(contentsOf: DetectionParityTests.fixture("coffee.jpg.letterbox.png"))
        let input = try canvas.tensor(mean: config.mean, std: config.std)
        let small = try three.network(input).classes[4].scalars, big = try full.network(input).classes[4].scalars
        #expect(small.count == 16 * 27)
        for position in 0..<16 { for anchor in 0..<9 { for c in 0..<3 {
            #expect(abs(small[position * 27 + anchor * 3 + c] - big[position * 810 + anchor * 90 + c]) < 1e-4)
        } } }
        #expect(try three.detect(ImageCodec.decode(contentsOf: root.appendingPathComponent("samples/coffee.jpg").path)).allSatisfy { $0.classIndex < 3 })
    }
}

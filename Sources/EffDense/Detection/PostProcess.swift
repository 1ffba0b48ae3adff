import EffCore
import Foundation

/// One detected object: box (x1, y1, x2, y2) in pixels, score, 0-based class index.
public struct Detection: Sendable, Equatable {
    public var box: [Float]
    public var score: Float
    public var classIndex: Int

    public init(box: [Float], score: Float, classIndex: Int) {
        self.box = box
        self.score = score
        self.classIndex = classIndex
    }
}

/// effdet's post-processing settings.
public struct PostProcessing: Sendable, Equatable {
    /// Best (anchor, class) pairs kept before NMS.
    public var maxDetectionPoints = 5000
    /// Detections kept after NMS.
    public var maxDetections = 100
    /// Boxes of one class overlapping a better one by more than this are dropped (hard NMS).
    public var iouThreshold: Float = 0.5
    /// Detections scoring below this are dropped at the end (0 keeps effdet's output whole).
    public var scoreThreshold: Float = 0
    /// Gaussian soft-NMS (sigma 0.5, pruning below 0.001) instead of hard NMS, as effdet's option.
    public var softNMS = false

    public init(maxDetectionPoints: Int = 5000, maxDetections: Int = 100, iouThreshold: Float = 0.5,
                scoreThreshold: Float = 0, softNMS: Bool = false) {
        self.maxDetectionPoints = maxDetectionPoints
        self.maxDetections = maxDetections
        self.iouThreshold = iouThreshold
        self.scoreThreshold = scoreThreshold
        self.softNMS = softNMS
    }

    /// Detections from the raw outputs, as effdet's DetBenchPredict: top-k (anchor, class) logits,
    /// box decoding, clipping to the picture's region (`clipSize`, network pixels), sigmoid,
    /// per-class NMS, best `maxDetections`, boxes scaled by `imageScale` to picture pixels.
    public func detections(classes: [Tensor], boxes: [Tensor], anchors: AnchorGrid, numClasses: Int,
                           imageScale: Float = 1, clipSize: (width: Float, height: Float)? = nil) throws -> [Detection] {
        guard classes.count == boxes.count else { throw TensorError("detections", "class and box outputs differ in levels") }
        let totalAnchors = try boxes.reduce(0) { $0 + (try $1.requireNHWC("detections").h * $1.shape[2] * $1.shape[3]) / 4 }
        guard totalAnchors == anchors.count, classes.reduce(0, { $0 + $1.count }) == totalAnchors * numClasses else {
            throw TensorError("detections", "outputs hold \(totalAnchors) anchors, the anchor grid \(anchors.count)")
        }
        // 1. The best (anchor, class) logits over all levels.
        let logits = classes.flatMap(\.scalars)
        let minimumLogit = scoreThreshold > 0 ? Float(log(Double(scoreThreshold) / (1 - Double(scoreThreshold)))) : -.infinity
        let candidates = topK(logits, k: maxDetectionPoints, above: minimumLogit)
        let deltas = boxes.flatMap(\.scalars)
        // 2. Decode, clip, score.
        var decoded: [Detection] = []
        decoded.reserveCapacity(candidates.count)
        for index in candidates {
            let anchor = index / numClasses
            let a = Array(anchors.boxes[(anchor * 4)..<(anchor * 4 + 4)])
            let (yca, xca) = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
            let (ha, wa) = (a[2] - a[0], a[3] - a[1])
            let (ty, tx, th, tw) = (deltas[anchor * 4], deltas[anchor * 4 + 1], deltas[anchor * 4 + 2], deltas[anchor * 4 + 3])
            let w = expf(tw) * wa, h = expf(th) * ha
            let yc = ty * ha + yca, xc = tx * wa + xca
            var box = [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]
            if let clipSize {
                box = box.map { max($0, 0) }
                box = [min(box[0], clipSize.width), min(box[1], clipSize.height), min(box[2], clipSize.width), min(box[3], clipSize.height)]
            }
            let score = 1 / (1 + expf(-logits[index]))
            // A box or score the network made non-finite (overflowing activations) is no detection.
            guard score.isFinite, box.allSatisfy(\.isFinite) else { continue }
            decoded.append(Detection(box: box, score: score, classIndex: index % numClasses))
        }
        // 3. Per-class NMS, best first.
        let kept = softNMS ? Self.softNMS(decoded) : Self.hardNMS(decoded, iouThreshold: iouThreshold)
        return kept.prefix(maxDetections).filter { $0.score >= scoreThreshold }.map {
            Detection(box: $0.box.map { $0 * imageScale }, score: $0.score, classIndex: $0.classIndex)
        }
    }

    /// Indices of the `k` largest values above `threshold`, largest first.
    func topK(_ values: [Float], k: Int, above threshold: Float) -> [Int] {
        var heap = MinHeap(capacity: k)
        for (i, v) in values.enumerated() where v > threshold { heap.offer(v, i) }
        return heap.sortedDescending()
    }

    /// Intersection over union of two (x1, y1, x2, y2) boxes, as torchvision computes it.
    static func iou(_ a: [Float], _ b: [Float]) -> Float {
        let areaA = (a[2] - a[0]) * (a[3] - a[1]), areaB = (b[2] - b[0]) * (b[3] - b[1])
        let w = max(0, min(a[2], b[2]) - max(a[0], b[0])), h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let inter = w * h
        return inter / (areaA + areaB - inter)
    }

    /// Greedy NMS within each class (torchvision's batched_nms): best score first, dropping boxes
    /// whose IoU with a kept box of their class exceeds the threshold.
    public static func hardNMS(_ detections: [Detection], iouThreshold: Float) -> [Detection] {
        let order = detections.indices.sorted { detections[$0].score > detections[$1].score }
        var keptByClass: [Int: [Int]] = [:]
        var kept: [Detection] = []
        for i in order {
            let d = detections[i]
            let same = keptByClass[d.classIndex, default: []]
            if same.contains(where: { iou(detections[$0].box, d.box) > iouThreshold }) { continue }
            keptByClass[d.classIndex, default: []].append(i)
            kept.append(d)
        }
        return kept
    }

    /// effdet's gaussian soft-NMS within each class (sigma 0.5, pruning below 0.001): take the
    /// best, decay the others by exp(-iou² / sigma), repeat; results by their decayed scores.
    public static func softNMS(_ detections: [Detection], sigma: Float = 0.5, pruneBelow: Float = 0.001) -> [Detection] {
        var result: [Detection] = []
        for classIndex in Set(detections.map(\.classIndex)) {
            var remaining = detections.filter { $0.classIndex == classIndex }
            while let best = remaining.indices.max(by: { remaining[$0].score < remaining[$1].score }) {
                let top = remaining.remove(at: best)
                result.append(top)
                remaining = remaining.compactMap { d in
                    let overlap = iou(top.box, d.box)
                    var decayed = d
                    decayed.score *= expf(-(overlap * overlap) / sigma)
                    return decayed.score > pruneBelow ? decayed : nil
                }
            }
        }
        return result.sorted { $0.score > $1.score }
    }
}

/// A bounded min-heap keeping the `capacity` largest (value, index) pairs.
struct MinHeap {
    private(set) var items: [(value: Float, index: Int)] = []
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        items.reserveCapacity(self.capacity)
    }

    mutating func offer(_ value: Float, _ index: Int) {
        guard capacity > 0 else { return }
        if items.count < capacity {
            items.append((value, index))
            siftUp(items.count - 1)
        } else if value > items[0].value {
            items[0] = (value, index)
            siftDown(0)
        }
    }

    func sortedDescending() -> [Int] {
        items.sorted { $0.value > $1.value || ($0.value == $1.value && $0.index < $1.index) }.map(\.index)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].value < items[parent].value else { return }
            items.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left].value < items[smallest].value { smallest = left }
            if right < items.count && items[right].value < items[smallest].value { smallest = right }
            if smallest == parent { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

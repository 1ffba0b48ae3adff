/// Semantic segmentation metrics over a dataset, from a confusion matrix of class indices:
/// pixels whose ground truth is `ignoreIndex` (VOC's 255 border) are left out, as smp's
/// `get_stats(..., ignore_index=255)` and mmseg do.
public struct SegmentationMetrics: Sendable {
    public let classCount: Int
    public let ignoreIndex: Int?
    /// confusion[truth][prediction]: pixel counts over every mask added.
    public private(set) var confusion: [[Int]]
    /// Pixels left out: ignored ground truth, or a class index at or above `classCount`.
    public private(set) var ignoredPixels = 0

    public init(classCount: Int, ignoreIndex: Int? = 255) {
        self.classCount = classCount
        self.ignoreIndex = ignoreIndex
        confusion = Array(repeating: Array(repeating: 0, count: classCount), count: classCount)
    }

    /// Adds one picture's predicted and ground-truth masks (class indices, same size).
    public mutating func add(prediction: [UInt8], truth: [UInt8]) {
        precondition(prediction.count == truth.count, "masks of different sizes")
        for (p, t) in zip(prediction, truth) {
            let truthClass = Int(t), predicted = Int(p)
            if truthClass == ignoreIndex || truthClass >= classCount || predicted >= classCount {
                ignoredPixels += 1
                continue
            }
            confusion[truthClass][predicted] += 1
        }
    }

    /// Per class: true positives, false positives, false negatives (smp's get_stats summed over the dataset).
    public func counts(_ c: Int) -> (tp: Int, fp: Int, fn: Int) {
        let tp = confusion[c][c]
        let predicted = (0..<classCount).reduce(0) { $0 + confusion[$1][c] }
        let actual = confusion[c].reduce(0, +)
        return (tp, predicted - tp, actual - tp)
    }

    /// Dataset-wise IoU of each class, TP / (TP + FP + FN); nil for a class in neither the
    /// ground truth nor the predictions (smp's `iou_score` per class on the summed stats).
    public var perClassIoU: [Double?] {
        (0..<classCount).map { c in
            let (tp, fp, fn) = counts(c)
            return tp + fp + fn == 0 ? nil : Double(tp) / Double(tp + fp + fn)
        }
    }

    /// The mean of the per-class IoUs over the classes present (in the ground truth or the
    /// predictions): mmseg's and the VOC benchmark's mIoU. The figure reported as mIoU.
    public var meanIoU: Double {
        let present = perClassIoU.compactMap { $0 }
        return present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count)
    }

    /// smp's `iou_score(tp, fp, fn, tn, reduction="macro")` with its default zero_division 1.0:
    /// absent classes count as 1.0 and the mean is over all classes.
    public var smpMacroIoU: Double {
        perClassIoU.map { $0 ?? 1.0 }.reduce(0, +) / Double(classCount)
    }

    /// Correct pixels over pixels counted.
    public var pixelAccuracy: Double {
        let total = confusion.reduce(0) { $0 + $1.reduce(0, +) }
        let correct = (0..<classCount).reduce(0) { $0 + confusion[$1][$1] }
        return total == 0 ? 0 : Double(correct) / Double(total)
    }
}

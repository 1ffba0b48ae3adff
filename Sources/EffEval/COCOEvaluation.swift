import Foundation

/// COCO box metrics computed exactly as pycocotools' `COCOeval(gt, dt, "bbox")` with its default
/// parameters: IoU thresholds .50:.05:.95, 101 recall points, at most 1 / 10 / 100 detections per
/// image and category, area ranges all / small / medium / large from the annotations' `area`
/// (bounds inclusive), crowd regions matched any number of times with the detection's area as the
/// union, greedy matching in score order (ties keep file order), categories without ground truth
/// left out of the means. `stats` are pycocotools' 12 numbers, in its order.
public struct COCOEvaluation: Sendable {
    /// np.linspace(.5, .95, 10): i * step + start, the last exactly .95.
    public static let iouThresholds: [Double] = linspace(0.5, 0.95, count: 10)
    /// np.linspace(0, 1, 101).
    public static let recallThresholds: [Double] = linspace(0, 1, count: 101)

    /// numpy's linspace: start + i * ((stop - start) / (count - 1)), the last value exactly stop.
    static func linspace(_ start: Double, _ stop: Double, count: Int) -> [Double] {
        let step: Double = (stop - start) / Double(count - 1)
        var values: [Double] = []
        for i in 0..<count {
            let value: Double = Double(i) * step + start
            values.append(i == count - 1 ? stop : value)
        }
        return values
    }
    public static let maxDetections = [1, 10, 100]
    public static let areaRanges: [(label: String, low: Double, high: Double)] = [
        ("all", 0, 1e10), ("small", 0, 1024), ("medium", 1024, 9216), ("large", 9216, 1e10),
    ]

    /// AP, AP50, AP75, AP small / medium / large, AR@1, AR@10, AR@100, AR small / medium / large.
    public let stats: [Double]
    /// AP (IoU .50:.95, all areas, 100 detections) per category in id order; -1 for a category
    /// without ground truth in the evaluated images.
    public let perCategoryAP: [(categoryID: Int, name: String, ap: Double)]
    /// The images evaluated, and the categories.
    public let imageIDs: [Int]
    public let categoryIDs: [Int]

    /// precision[t][r][k][a][m] and recall[t][k][a][m], -1 where undefined (as pycocotools).
    private let precision: [[[[[Double]]]]]
    private let recall: [[[[Double]]]]

    /// Evaluates `detections` against `groundTruth` over `imageIDs` (default: every image of the
    /// ground truth, as pycocotools; effdet's validate.py passes the images it ran).
    public init(groundTruth: COCOGroundTruth, detections: [COCODetection], imageIDs chosen: [Int]? = nil) {
        let imageIDs = Array(Set(chosen ?? groundTruth.images.map(\.id))).sorted()
        let categoryIDs = Array(Set(groundTruth.categories.map(\.id))).sorted()
        let imageSet = Set(imageIDs), categorySet = Set(categoryIDs)
        var truths: [Pair: [Truth]] = [:], found: [Pair: [Found]] = [:]
        for annotation in groundTruth.annotations where imageSet.contains(annotation.imageID) && categorySet.contains(annotation.categoryID) {
            truths[Pair(image: annotation.imageID, category: annotation.categoryID), default: []].append(
                Truth(id: annotation.id, box: annotation.box, area: annotation.area, isCrowd: annotation.isCrowd))
        }
        // loadRes: ids 1...N in file order, area = w * h.
        for (index, detection) in detections.enumerated() where imageSet.contains(detection.imageID) && categorySet.contains(detection.categoryID) {
            found[Pair(image: detection.imageID, category: detection.categoryID), default: []].append(
                Found(id: index + 1, box: detection.box, area: detection.box[2] * detection.box[3], score: detection.score))
        }
        let T = Self.iouThresholds.count, R = Self.recallThresholds.count, K = categoryIDs.count
        let A = Self.areaRanges.count, M = Self.maxDetections.count
        var precision = [[[[[Double]]]]](repeating: [[[[Double]]]](repeating: [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: -1, count: M), count: A), count: K), count: R), count: T)
        var recall = [[[[Double]]]](repeating: [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: -1, count: M), count: A), count: K), count: T)
        for (k, category) in categoryIDs.enumerated() {
            for (a, range) in Self.areaRanges.enumerated() {
                let evaluated = imageIDs.compactMap { image -> ImageResult? in
                    let pair = Pair(image: image, category: category)
                    return Self.evaluateImage(truths[pair] ?? [], found[pair] ?? [], range: (range.low, range.high), maxDetections: Self.maxDetections[M - 1])
                }
                guard !evaluated.isEmpty else { continue }
                for (m, maxDetections) in Self.maxDetections.enumerated() {
                    Self.accumulate(evaluated, maxDetections: maxDetections) { t, curve, lastRecall in
                        recall[t][k][a][m] = lastRecall
                        for r in 0..<R { precision[t][r][k][a][m] = curve[r] }
                    }
                }
            }
        }
        self.precision = precision
        self.recall = recall
        self.imageIDs = imageIDs
        self.categoryIDs = categoryIDs
        let names = Dictionary(groundTruth.categories.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        var stats: [Double] = []
        for line in Self.summaryRows { stats.append(Self.mean(of: line, precision: precision, recall: recall, categories: 0..<K)) }
        self.stats = stats
        perCategoryAP = categoryIDs.enumerated().map { k, id in
            (id, names[id] ?? "", Self.mean(of: Self.summaryRows[0], precision: precision, recall: recall, categories: k..<(k + 1)))
        }
    }

    /// The 12 lines pycocotools' summarize() prints, with these stats.
    public var summary: [String] {
        zip(Self.summaryRows, stats).map { row, value in
            let title = row.precision ? "Average Precision" : "Average Recall"
            let kind = row.precision ? "(AP)" : "(AR)"
            let iou = row.iou.map { String(format: "%0.2f", $0) } ?? "0.50:0.95"
            let area = String(repeating: " ", count: max(0, 6 - row.area.count)) + row.area
            let detections = String(format: "%3d", row.maxDetections)
            return " " + title.padding(toLength: 18, withPad: " ", startingAt: 0) + " \(kind) @[ IoU=" + iou.padding(toLength: 9, withPad: " ", startingAt: 0)
                + " | area=\(area) | maxDets=\(detections) ] = " + String(format: "%0.3f", value)
        }
    }

    // MARK: pycocotools' evaluateImg / accumulate / summarize

    struct Pair: Hashable { let image: Int, category: Int }
    struct Truth { let id: Int; let box: [Double]; let area: Double; let isCrowd: Bool }
    struct Found { let id: Int; let box: [Double]; let area: Double; let score: Double }

    /// One image and category at one area range: scores, matches (the matched ground truth's
    /// id, 0 for none) and ignore flags per IoU threshold, and the ground truths' ignore flags.
    struct ImageResult {
        var scores: [Double]
        var matched: [[Bool]]        // [t][d]
        var ignored: [[Bool]]        // [t][d]
        var truthIgnored: [Bool]
    }

    /// Indices of `scores` from the highest, ties in their order (numpy's stable mergesort of -score).
    static func orderByScore(_ scores: [Double]) -> [Int] {
        scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    }

    /// pycocotools' bbIou: intersection over union, the detection's area as the union for a crowd.
    static func iou(_ d: [Double], _ g: [Double], crowd: Bool) -> Double {
        let w = min(d[2] + d[0], g[2] + g[0]) - max(d[0], g[0])
        if w <= 0 { return 0 }
        let h = min(d[3] + d[1], g[3] + g[1]) - max(d[1], g[1])
        if h <= 0 { return 0 }
        let intersection = w * h
        let union = crowd ? d[2] * d[3] : d[2] * d[3] + g[2] * g[3] - intersection
        return intersection / union
    }

    static func evaluateImage(_ truths: [Truth], _ found: [Found], range: (Double, Double), maxDetections: Int) -> ImageResult? {
        if truths.isEmpty && found.isEmpty { return nil }
        let outside = { (area: Double) in area < range.0 || area > range.1 }
        let truthIgnoredUnsorted = truths.map { $0.isCrowd || outside($0.area) }
        // Ground truths not ignored first (stable), detections by score (stable), at most maxDetections.
        let truthOrder = truths.indices.sorted { (truthIgnoredUnsorted[$0] ? 1 : 0, $0) < (truthIgnoredUnsorted[$1] ? 1 : 0, $1) }
        let gts = truthOrder.map { truths[$0] }
        let truthIgnored = truthOrder.map { truthIgnoredUnsorted[$0] }
        let dts = orderByScore(found.map(\.score)).prefix(maxDetections).map { found[$0] }
        let T = iouThresholds.count
        var truthMatched = [[Bool]](repeating: [Bool](repeating: false, count: gts.count), count: T)
        var matchedID = [[Int]](repeating: [Int](repeating: 0, count: dts.count), count: T)
        var ignored = [[Bool]](repeating: [Bool](repeating: false, count: dts.count), count: T)
        if !gts.isEmpty && !dts.isEmpty {
            let ious = dts.map { d in gts.map { g in iou(d.box, g.box, crowd: g.isCrowd) } }
            for (t, threshold) in iouThresholds.enumerated() {
                for (d, _) in dts.enumerated() {
                    var best = min(threshold, 1 - 1e-10)
                    var match = -1
                    for (g, truth) in gts.enumerated() {
                        if truthMatched[t][g] && !truth.isCrowd { continue }
                        if match > -1 && !truthIgnored[match] && truthIgnored[g] { break }
                        if ious[d][g] < best { continue }
                        best = ious[d][g]
                        match = g
                    }
                    if match == -1 { continue }
                    ignored[t][d] = truthIgnored[match]
                    matchedID[t][d] = gts[match].id
                    truthMatched[t][match] = true
                }
            }
        }
        // A detection left unmatched outside the area range is ignored. "Matched" is a non-zero
        // ground-truth id, as pycocotools stores it.
        for t in 0..<T {
            for (d, detection) in dts.enumerated() where matchedID[t][d] == 0 && outside(detection.area) { ignored[t][d] = true }
        }
        return ImageResult(scores: dts.map(\.score), matched: matchedID.map { $0.map { $0 != 0 } }, ignored: ignored, truthIgnored: truthIgnored)
    }

    /// One category, area range and detection limit over the images: per IoU threshold the
    /// precision at the 101 recall points and the last recall.
    static func accumulate(_ results: [ImageResult], maxDetections: Int, _ store: (Int, [Double], Double) -> Void) {
        var scores: [Double] = [], matched: [[Bool]] = Array(repeating: [], count: iouThresholds.count)
        var ignored = matched
        var relevant = 0
        for result in results {
            let n = min(maxDetections, result.scores.count)
            scores += result.scores.prefix(n)
            for t in 0..<iouThresholds.count {
                matched[t] += result.matched[t].prefix(n)
                ignored[t] += result.ignored[t].prefix(n)
            }
            relevant += result.truthIgnored.filter { !$0 }.count
        }
        if relevant == 0 { return }
        let order = orderByScore(scores)
        let epsilon = Double.ulpOfOne   // np.spacing(1)
        for t in 0..<iouThresholds.count {
            // A point per detection, ignored ones too (they add neither a true nor a false
            // positive), as pycocotools' cumulative sums do.
            var tp = 0.0, fp = 0.0
            var recalls: [Double] = [], precisions: [Double] = []
            for index in order {
                if !ignored[t][index] { if matched[t][index] { tp += 1 } else { fp += 1 } }
                recalls.append(tp / Double(relevant))
                precisions.append(tp / (fp + tp + epsilon))
            }
            let lastRecall = recalls.last ?? 0
            for i in stride(from: precisions.count - 1, to: 0, by: -1) where precisions[i] > precisions[i - 1] {
                precisions[i - 1] = precisions[i]
            }
            var curve = [Double](repeating: 0, count: recallThresholds.count)
            var position = 0
            for (r, threshold) in recallThresholds.enumerated() {
                while position < recalls.count && recalls[position] < threshold { position += 1 }   // searchsorted, side left
                if position >= recalls.count { break }
                curve[r] = precisions[position]
            }
            store(t, curve, lastRecall)
        }
    }

    struct SummaryRow { let precision: Bool; let iou: Double?; let area: String; let maxDetections: Int }
    static let summaryRows: [SummaryRow] = [
        SummaryRow(precision: true, iou: nil, area: "all", maxDetections: 100),
        SummaryRow(precision: true, iou: 0.5, area: "all", maxDetections: 100),
        SummaryRow(precision: true, iou: 0.75, area: "all", maxDetections: 100),
        SummaryRow(precision: true, iou: nil, area: "small", maxDetections: 100),
        SummaryRow(precision: true, iou: nil, area: "medium", maxDetections: 100),
        SummaryRow(precision: true, iou: nil, area: "large", maxDetections: 100),
        SummaryRow(precision: false, iou: nil, area: "all", maxDetections: 1),
        SummaryRow(precision: false, iou: nil, area: "all", maxDetections: 10),
        SummaryRow(precision: false, iou: nil, area: "all", maxDetections: 100),
        SummaryRow(precision: false, iou: nil, area: "small", maxDetections: 100),
        SummaryRow(precision: false, iou: nil, area: "medium", maxDetections: 100),
        SummaryRow(precision: false, iou: nil, area: "large", maxDetections: 100),
    ]

    /// The mean of the defined (> -1) entries a summary row selects; -1 when there are none.
    static func mean(of row: SummaryRow, precision: [[[[[Double]]]]], recall: [[[[Double]]]], categories: Range<Int>) -> Double {
        let thresholds = row.iou.map { value in iouThresholds.indices.filter { iouThresholds[$0] == value } } ?? Array(iouThresholds.indices)
        guard let a = areaRanges.firstIndex(where: { $0.label == row.area }), let m = maxDetections.firstIndex(of: row.maxDetections) else { return -1 }
        var values: [Double] = []
        for t in thresholds {
            for k in categories {
                if row.precision {
                    for r in recallThresholds.indices where precision[t][r][k][a][m] > -1 { values.append(precision[t][r][k][a][m]) }
                } else if recall[t][k][a][m] > -1 {
                    values.append(recall[t][k][a][m])
                }
            }
        }
        return values.isEmpty ? -1 : values.reduce(0, +) / Double(values.count)
    }
}

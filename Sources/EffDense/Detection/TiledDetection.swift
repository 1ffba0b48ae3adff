import Dispatch
import EffCore
import EffImage
import Foundation

/// SAHI-style sliced detection of pictures of any size: tiles of `tile` x `tile` pixels
/// overlapping by `overlap` are read one by one and run through the detector as pictures of
/// their own (several at once), their boxes moved to picture coordinates, and, optionally, the
/// whole picture is also run at the network's size for objects larger than a tile. Boxes of the
/// same class from different tiles are merged by greedy suppression on intersection over the
/// smaller box (SAHI's IOS match): an object cut by a seam — whole in one tile, a piece of it in
/// the next — is reported once, by its best box, which plain IoU suppression would miss (the
/// piece's IoU with the whole box is its share of it, often under 0.5).
public struct TiledDetector: Sendable {
    public let detector: ObjectDetector
    public var tile: Int
    public var overlap: Int
    public var concurrentTiles: Int
    /// Boxes of one class overlapping by more than this share of the smaller box are one object.
    public var mergeThreshold: Float = 0.5

    public init(detector: ObjectDetector, tile: Int = 1024, overlap: Int = 128, concurrentTiles: Int = min(Threading.threadCount, 4)) {
        self.detector = detector
        self.tile = tile
        self.overlap = overlap
        self.concurrentTiles = max(1, concurrentTiles)
    }

    /// Detections in `source`'s pixels, best first. `wholePicture`: the decoded picture, to run
    /// once at the network's size as well (SAHI's standard prediction); nil skips that pass.
    public func detect(_ source: PixelSource, wholePicture: RGBImage? = nil, postProcessing: PostProcessing,
                       tileDone: @escaping @Sendable () -> Void = {}) throws -> [Detection] {
        let columns = TileAxis(length: source.width, tile: tile, overlap: overlap)
        let rows = TileAxis(length: source.height, tile: tile, overlap: overlap)
        let positions = rows.starts.flatMap { y in columns.starts.map { x in (x, y) } }
        let found = DetectionsFound(count: positions.count)
        let work = TileWork(count: positions.count)
        let workers = min(concurrentTiles, positions.count)
        let threadsEach = max(1, Threading.threadCount / workers)
        let (tileWidth, tileHeight) = (columns.tile, rows.tile)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = work.next() {
                do {
                    let (x, y) = positions[index]
                    let piece = try source.read(x: x, y: y, width: tileWidth, height: tileHeight)
                    let boxes = try Threading.withThreadLimit(threadsEach) { try detector.detect(piece, postProcessing: postProcessing) }
                    found.set(index, boxes.map {
                        Detection(box: [$0.box[0] + Float(x), $0.box[1] + Float(y), $0.box[2] + Float(x), $0.box[3] + Float(y)],
                                  score: $0.score, classIndex: $0.classIndex)
                    })
                    tileDone()
                } catch {
                    work.fail(error)
                }
            }
        }
        if let error = work.error { throw error }
        var all = found.all
        if let wholePicture, positions.count > 1 {
            all += try detector.detect(wholePicture, postProcessing: postProcessing).map { ($0, -1) }
        }
        return Self.merge(all, threshold: mergeThreshold)
    }

    /// Greedy class-wise suppression on intersection over the smaller box, between boxes of
    /// different passes only (each `(box, pass)`: a tile's index, or -1 for the whole picture; a
    /// tile's own boxes were already suppressed by the detector's NMS and stay as they are): best
    /// score first (ties: earlier first), a box is dropped when it overlaps a kept box of its
    /// class from another pass by more than `threshold` of the smaller of the two.
    public static func merge(_ detections: [(Detection, Int)], threshold: Float) -> [Detection] {
        let order = detections.indices.sorted {
            detections[$0].0.score > detections[$1].0.score || (detections[$0].0.score == detections[$1].0.score && $0 < $1)
        }
        var kept: [(Detection, Int)] = []
        for index in order {
            let (candidate, pass) = detections[index]
            let duplicate = kept.contains { other, otherPass in
                otherPass != pass && other.classIndex == candidate.classIndex && intersectionOverSmaller(other.box, candidate.box) > threshold
            }
            if !duplicate { kept.append((candidate, pass)) }
        }
        return kept.map(\.0)
    }

    static func intersectionOverSmaller(_ a: [Float], _ b: [Float]) -> Float {
        let w = min(a[2], b[2]) - max(a[0], b[0]), h = min(a[3], b[3]) - max(a[1], b[1])
        guard w > 0, h > 0 else { return 0 }
        let smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
        return smaller > 0 ? w * h / smaller : 0
    }
}

/// Each tile's detections, kept in tile order whatever order the workers finish in.
private final class DetectionsFound: @unchecked Sendable {
    private let lock = NSLock()
    private var perTile: [[Detection]]
    init(count: Int) { perTile = Array(repeating: [], count: count) }
    func set(_ index: Int, _ detections: [Detection]) { lock.withLock { perTile[index] = detections } }
    /// Every tile's boxes with their tile's index.
    var all: [(Detection, Int)] { lock.withLock { perTile.enumerated().flatMap { index, boxes in boxes.map { ($0, index) } } } }
}

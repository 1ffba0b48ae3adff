import Dispatch
import EffCore
import EffImage
import Foundation

/// Pixels a tiled run reads region by region: a large TIFF, or a picture in memory.
public protocol PixelSource: Sendable {
    var width: Int { get }
    var height: Int { get }
    func read(x: Int, y: Int, width: Int, height: Int) throws -> RGBImage
}

extension TIFFRegionReader: PixelSource {}
extension StreamedPicture: PixelSource {}
extension WholeSlideReader: PixelSource {}

/// A decoded picture as a pixel source.
public struct PictureSource: PixelSource {
    public let picture: RGBImage
    public init(_ picture: RGBImage) { self.picture = picture }
    public var width: Int { picture.width }
    public var height: Int { picture.height }
    public func read(x: Int, y: Int, width: Int, height: Int) throws -> RGBImage {
        try picture.cropped(x: x, y: y, width: width, height: height)
    }
}

/// Where tiles go along one axis, and which pixels each tile decides.
public struct TileAxis: Sendable, Equatable {
    /// First pixel of each tile; tiles are `tile` long (the whole axis when shorter), the last one
    /// ending at the axis' end.
    public let starts: [Int]
    public let tile: Int
    /// The pixels tile i decides: from the middle of its overlap with the tile before to the
    /// middle of its overlap with the next (centre crop: every pixel is decided by the tile in
    /// which it lies farthest from an edge).
    public let owned: [Range<Int>]

    public init(length: Int, tile requested: Int, overlap: Int) {
        let tile = min(requested, length)
        let step = max(1, tile - overlap)
        var starts = [0]
        while starts[starts.count - 1] + tile < length {
            starts.append(min(starts[starts.count - 1] + step, length - tile))
        }
        self.starts = starts
        self.tile = tile
        var owned: [Range<Int>] = []
        for (i, start) in starts.enumerated() {
            let low = i == 0 ? 0 : (start + starts[i - 1] + tile) / 2
            let high = i == starts.count - 1 ? length : (starts[i + 1] + start + tile) / 2
            owned.append(low..<high)
        }
        self.owned = owned
    }
}

/// Segmentation of pictures of any size in bounded memory: tiles of `tile` x `tile` pixels
/// overlapping their neighbours by `overlap` are read from the source one by one and segmented
/// as pictures of their own (several at once), and each mask pixel is taken from the tile whose
/// centre it is nearest (centre crop), so no tile's border decides a pixel another tile sees
/// better. Peak memory: one band's mask (width x tile bytes) plus the tiles in flight.
public struct TiledSegmenter: Sendable {
    public let segmenter: Segmenter
    public var tile: Int
    public var overlap: Int
    /// Tiles segmented at once (each with its share of the kernel threads).
    public var concurrentTiles: Int

    public init(segmenter: Segmenter, tile: Int = 1024, overlap: Int = 128, concurrentTiles: Int = min(Threading.threadCount, 4)) {
        self.segmenter = segmenter
        self.tile = tile
        self.overlap = overlap
        self.concurrentTiles = max(1, concurrentTiles)
    }

    /// One band's result: the mask of rows `rows` (width x rows.count class indices, top to
    /// bottom).
    public struct Band: Sendable {
        public let rows: Range<Int>
        public let mask: [UInt8]
        public init(rows: Range<Int>, mask: [UInt8]) {
            self.rows = rows
            self.mask = mask
        }
    }

    /// Segments `source` band by band (one row of tiles), top to bottom, handing each band's
    /// mask to `deliver`, in order, on a thread of its own while the next band's tiles are
    /// segmented (write behind: the cores never wait for the mask file's compression). Each tile
    /// is read from the source on its own (a band of a wide picture is never held whole);
    /// `tileDone(x, y, pixels, owned columns, owned rows)` sees each tile as it finishes, on its
    /// worker's thread. `finished`: the first bands as an earlier run of the same picture and
    /// model gave them (resuming): delivered again without running the network, their tiles
    /// only read for `tileDone`. Returns the pixel count per class.
    public func segment(_ source: PixelSource, finished: [Band] = [], deliver: (Band) throws -> Void,
                        tileDone: @escaping @Sendable (_ x: Int, _ y: Int, _ pixels: RGBImage, _ columns: Range<Int>, _ rows: Range<Int>) -> Void = { _, _, _, _, _ in }) throws -> [Int] {
        try withoutActuallyEscaping(deliver) { deliver in
            // At most one band is delivered while the next is segmented; every delivery ends
            // before this returns, so `deliver` does not outlive the call.
            let behind = WriteBehind(deliver)
            defer { behind.finish() }
            try segmentBands(source, finished: finished, tileDone: tileDone) { band in try behind.deliver(band) }
            behind.finish()
            if let error = behind.error { throw error }
            return behind.histogram
        }
    }

    private func segmentBands(_ source: PixelSource, finished: [Band], tileDone: @escaping @Sendable (_ x: Int, _ y: Int, _ pixels: RGBImage, _ columns: Range<Int>, _ rows: Range<Int>) -> Void,
                              deliver: (Band) throws -> Void) throws {
        let columns = TileAxis(length: source.width, tile: tile, overlap: overlap)
        let rowsAxis = TileAxis(length: source.height, tile: tile, overlap: overlap)
        for (j, top) in rowsAxis.starts.enumerated() {
            let owned = rowsAxis.owned[j]
            if j < finished.count {
                guard finished[j].rows == owned, finished[j].mask.count == source.width * owned.count else {
                    throw TensorError("resume", "a resumed band holds rows \(finished[j].rows), the tiling's band \(j) rows \(owned)")
                }
                for (i, left) in columns.starts.enumerated() {
                    tileDone(left, top, try source.read(x: left, y: top, width: columns.tile, height: rowsAxis.tile), columns.owned[i], owned)
                }
                try deliver(finished[j])
                continue
            }
            var mask = [UInt8](repeating: 0, count: source.width * owned.count)
            try mask.withUnsafeMutableBufferPointer { out in
                let target = UncheckedPointer(out.baseAddress)
                try forEachConcurrently(columns.starts.count) { i in
                    let left = columns.starts[i]
                    let piece = try source.read(x: left, y: top, width: columns.tile, height: rowsAxis.tile)
                    let tileMask = try segmenter.segment(piece)
                    guard let base = target.pointer else { return }
                    let cols = columns.owned[i]
                    for row in owned {
                        let from = (row - top) * columns.tile + (cols.lowerBound - left)
                        let to = (row - owned.lowerBound) * source.width + cols.lowerBound
                        tileMask.classes.withUnsafeBufferPointer { tilePixels in
                            (base + to).update(from: tilePixels.baseAddress! + from, count: cols.count)
                        }
                    }
                    tileDone(left, top, piece, cols, owned)
                }
            }
            try deliver(Band(rows: owned, mask: mask))
        }
    }

    /// Runs `body(0..<count)` on `concurrentTiles` threads, each kernel call with its share of
    /// the threads; the first error stops new work and is rethrown.
    private func forEachConcurrently(_ count: Int, _ body: @escaping (Int) throws -> Void) throws {
        let workers = min(concurrentTiles, count)
        let threadsEach = max(1, Threading.threadCount / workers)
        let state = TileWork(count: count)
        let work = UncheckedWork(body)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = state.next() {
                do {
                    try Threading.withThreadLimit(threadsEach) { try work.body(index) }
                } catch {
                    state.fail(error)
                }
            }
        }
        if let error = state.error { throw error }
    }
}

/// Delivers bands on a serial queue, one at a time and in order, while the caller goes on; counts
/// the classes; remembers the first failure (later bands are then dropped).
private final class WriteBehind: @unchecked Sendable {
    private let body: (TiledSegmenter.Band) throws -> Void
    private let queue = DispatchQueue(label: "effdense.tiled.write-behind")
    private let group = DispatchGroup()
    private(set) var histogram = [Int](repeating: 0, count: 256)
    private(set) var error: Error?

    init(_ body: @escaping (TiledSegmenter.Band) throws -> Void) { self.body = body }

    /// Waits for the band before, then hands `band` over; throws the failure of an earlier one.
    func deliver(_ band: TiledSegmenter.Band) throws {
        group.wait()
        if let error { throw error }
        queue.async(group: group) { [self] in
            do {
                for value in band.mask { histogram[Int(value)] += 1 }
                try body(band)
            } catch {
                self.error = error
            }
        }
    }

    /// Waits for the last band.
    func finish() { group.wait() }
}

/// Hands out tile indices to the workers; remembers the first failure.
final class TileWork: @unchecked Sendable {
    private let lock = NSLock()
    private var nextIndex = 0
    private let count: Int
    private(set) var error: Error?

    init(count: Int) { self.count = count }

    func next() -> Int? {
        lock.withLock {
            guard error == nil, nextIndex < count else { return nil }
            nextIndex += 1
            return nextIndex - 1
        }
    }

    func fail(_ failure: Error) { lock.withLock { if error == nil { error = failure } } }
}

/// The tile closure handed to the workers (it writes only its own tile's pixels).
private struct UncheckedWork: @unchecked Sendable {
    let body: (Int) throws -> Void
    init(_ body: @escaping (Int) throws -> Void) { self.body = body }
}

/// A pointer handed to the tile workers, each writing its own pixels.
private struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>?
    init(_ pointer: UnsafeMutablePointer<UInt8>?) { self.pointer = pointer }
}

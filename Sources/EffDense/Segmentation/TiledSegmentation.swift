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

/// A source seen at `scale` of its size (Pillow's bilinear filter, region by region: a region is
/// read at full size and made smaller).
public struct ScaledSource: PixelSource {
    public let source: PixelSource
    public let width: Int
    public let height: Int

    public init(_ source: PixelSource, scale: Double) {
        self.source = source
        (width, height) = Self.size(width: source.width, height: source.height, scale: scale)
    }

    /// The size of a `width` x `height` picture at `scale` (at least one pixel a side).
    public static func size(width: Int, height: Int, scale: Double) -> (width: Int, height: Int) {
        (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
    }

    public func read(x: Int, y: Int, width: Int, height: Int) throws -> RGBImage {
        let (sx, sy) = (Double(source.width) / Double(self.width), Double(source.height) / Double(self.height))
        let left = Int((Double(x) * sx).rounded(.down)), top = Int((Double(y) * sy).rounded(.down))
        let right = min(source.width, Int((Double(x + width) * sx).rounded(.up)))
        let bottom = min(source.height, Int((Double(y + height) * sy).rounded(.up)))
        return try source.read(x: left, y: top, width: right - left, height: bottom - top).resized(width: width, height: height, filter: .bilinear)
    }
}

/// Where tiles go along one axis, and which pixels each tile decides: the fewest tiles of
/// `tile` pixels that cover the axis overlapping by at least `overlap`, spread evenly (the
/// overlap the axis leaves is shared out, so every pixel has as much context as the tile count
/// allows), each start rounded down to a multiple of `multiple` (a network's size multiple:
/// the tiles' feature grids then fall on the whole picture's, which may cost up to
/// `multiple - 1` pixels of overlap); the last tile runs to the axis' end (up to `multiple - 1`
/// pixels longer than the others).
public struct TileAxis: Sendable, Equatable {
    /// The pixels of each tile.
    public let tiles: [Range<Int>]
    /// The pixels tile i decides: from the middle of its overlap with the tile before to the
    /// middle of its overlap with the next (centre crop: every pixel is decided by the tile in
    /// which it lies farthest from an edge).
    public let owned: [Range<Int>]
    /// The tile side asked for (the axis' length when shorter).
    public let tile: Int

    public init(length: Int, tile requested: Int, overlap: Int, multiple: Int = 1) {
        let tile = max(1, min(requested, length)), step = max(1, tile - overlap), multiple = max(1, multiple)
        let count = length <= tile ? 1 : 1 + (length - tile + step - 1) / step
        let starts = count == 1 ? [0] : (0..<count).map { i in i * (length - tile) / (count - 1) / multiple * multiple }
        let ends = starts.indices.map { i in i == count - 1 ? length : starts[i] + tile }
        tiles = starts.indices.map { i in starts[i]..<ends[i] }
        owned = starts.indices.map { i in
            (i == 0 ? 0 : (starts[i] + ends[i - 1]) / 2)..<(i == count - 1 ? length : (starts[i + 1] + ends[i]) / 2)
        }
        self.tile = tile
    }

    /// The first pixel of each tile.
    public var starts: [Int] { tiles.map(\.lowerBound) }
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
    /// What the network's global pools (squeeze-and-excitation, ASPP image pooling) see in a tile.
    public enum Context: String, Sendable, CaseIterable {
        /// The whole picture: every tile takes the picture's channel means, estimated first on a
        /// copy at `contextScale` of its size — tiles then decide as the whole picture would.
        case picture
        /// The tile alone (each tile a picture of its own, as smp run tile by tile).
        case tile
    }
    public var context: Context = .picture
    /// The size, as a share of the picture's, of the copy the picture's means are taken on.
    public var contextScale = 0.25
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
                        tileDone: @escaping @Sendable (_ x: Int, _ y: Int, _ pixels: RGBImage, _ columns: Range<Int>, _ rows: Range<Int>) -> Void = { _, _, _, _, _ in },
                        contextTileDone: @escaping @Sendable () -> Void = {}) throws -> [Int] {
        try withoutActuallyEscaping(deliver) { deliver in
            // At most one band is delivered while the next is segmented; every delivery ends
            // before this returns, so `deliver` does not outlive the call.
            let behind = WriteBehind(deliver)
            defer { behind.finish() }
            try segmentBands(source, finished: finished, tileDone: tileDone, contextTileDone: contextTileDone) { band in try behind.deliver(band) }
            behind.finish()
            if let error = behind.error { throw error }
            return behind.histogram
        }
    }

    /// The tiling of a source: tiles start at multiples of the network's size multiple.
    public func axes(width: Int, height: Int) -> (columns: TileAxis, rows: TileAxis) {
        let multiple = segmenter.network.sizeMultiple
        return (TileAxis(length: width, tile: tile, overlap: overlap, multiple: multiple),
                TileAxis(length: height, tile: tile, overlap: overlap, multiple: multiple))
    }

    private func segmentBands(_ source: PixelSource, finished: [Band], tileDone: @escaping @Sendable (_ x: Int, _ y: Int, _ pixels: RGBImage, _ columns: Range<Int>, _ rows: Range<Int>) -> Void,
                              contextTileDone: @escaping @Sendable () -> Void, deliver: (Band) throws -> Void) throws {
        let (columns, rowsAxis) = axes(width: source.width, height: source.height)
        func read(_ i: Int, _ j: Int) throws -> RGBImage {
            let (x, y) = (columns.tiles[i], rowsAxis.tiles[j])
            return try source.read(x: x.lowerBound, y: y.lowerBound, width: x.count, height: y.count)
        }
        let pools = finished.count < rowsAxis.tiles.count ? try pictureMeans(source, tileDone: contextTileDone) : nil
        for (j, tileRows) in rowsAxis.tiles.enumerated() {
            let (top, owned) = (tileRows.lowerBound, rowsAxis.owned[j])
            if j < finished.count {
                guard finished[j].rows == owned, finished[j].mask.count == source.width * owned.count else {
                    throw TensorError("resume", "a resumed band holds rows \(finished[j].rows), the tiling's band \(j) rows \(owned)")
                }
                for i in columns.tiles.indices {
                    tileDone(columns.tiles[i].lowerBound, top, try read(i, j), columns.owned[i], owned)
                }
                try deliver(finished[j])
                continue
            }
            var mask = [UInt8](repeating: 0, count: source.width * owned.count)
            try mask.withUnsafeMutableBufferPointer { out in
                let target = UncheckedPointer(out.baseAddress)
                try forEachConcurrently(columns.tiles.count) { i in
                    let left = columns.tiles[i].lowerBound
                    let piece = try read(i, j)
                    let tileMask = try segmenter.segment(piece, pools: pools.map { GlobalPooling(given: $0) })
                    guard let base = target.pointer else { return }
                    let cols = columns.owned[i]
                    for row in owned {
                        let from = (row - top) * piece.width + (cols.lowerBound - left)
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

    /// Whether tiles take means from a context pass: with `context == .picture` and more than one
    /// tile (one tile's own pools are the picture's).
    private func needsContextPass(width: Int, height: Int) -> Bool {
        let (columns, rows) = axes(width: width, height: height)
        return context == .picture && columns.tiles.count * rows.tiles.count > 1
    }

    /// The number of tiles the context pass runs on `source` (0 with `context == .tile`).
    public func contextTiles(width: Int, height: Int) -> Int {
        guard needsContextPass(width: width, height: height) else { return 0 }
        let small = ScaledSource.size(width: width, height: height, scale: contextScale)
        let (columns, rows) = axes(width: small.width, height: small.height)
        return columns.tiles.count * rows.tiles.count
    }

    /// With `context == .picture`, the means each global pool of the network takes over the
    /// whole picture, estimated on a copy at `contextScale` of its size cut in tiles as the
    /// picture is (each tile's pools its own, each adding up the pixels it owns); nil with `.tile`
    /// or a single tile.
    func pictureMeans(_ source: PixelSource, tileDone: @escaping @Sendable () -> Void = {}) throws -> [Tensor]? {
        guard needsContextPass(width: source.width, height: source.height) else { return nil }
        let small = ScaledSource(source, scale: contextScale)
        let (columns, rows) = axes(width: small.width, height: small.height)
        let gathered = GatheredMeans()
        try forEachConcurrently(columns.tiles.count * rows.tiles.count) { index in
            let (i, j) = (index % columns.tiles.count, index / columns.tiles.count)
            let (x, y) = (columns.tiles[i], rows.tiles[j])
            let piece = try small.read(x: x.lowerBound, y: y.lowerBound, width: x.count, height: y.count)
            let pools = GlobalPooling(gatheringRows: (rows.owned[j].lowerBound - y.lowerBound)..<(rows.owned[j].upperBound - y.lowerBound),
                                      columns: (columns.owned[i].lowerBound - x.lowerBound)..<(columns.owned[i].upperBound - x.lowerBound))
            try segmenter.gatherPools(piece, into: pools)
            try gathered.add(pools)
            tileDone()
        }
        return try gathered.means()
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

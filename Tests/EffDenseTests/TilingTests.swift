import EffCore
import EffDense
import EffImage
import Foundation
import Testing

/// The tiling's geometry and the global pools a tile can be given.
@Suite struct TilingTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Tiles cover the axis, overlap by at least the overlap asked (less at most multiple - 1),
    /// are spread evenly, start on multiples, and the owned ranges split the axis without gaps.
    @Test func tileAxisSpreadsTilesEvenlyOnMultiples() {
        for length in [1, 15, 100, 1024, 1025, 2048, 2000, 4096, 40_000, 3001] {
            for (tile, overlap, multiple) in [(1024, 128, 16), (512, 64, 16), (1024, 0, 1), (300, 100, 32), (2048, 256, 16)] {
                let axis = TileAxis(length: length, tile: tile, overlap: overlap, multiple: multiple)
                let label = "\(length) \(tile)/\(overlap)/\(multiple)"
                #expect(axis.tiles.first?.lowerBound == 0 && axis.tiles.last?.upperBound == length, "\(label)")
                #expect(axis.owned.first?.lowerBound == 0 && axis.owned.last?.upperBound == length, "\(label)")
                #expect(zip(axis.owned, axis.owned.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(label): owned ranges meet")
                #expect(zip(axis.owned, axis.tiles).allSatisfy { $1.contains($0.lowerBound) && $0.upperBound <= $1.upperBound }, "\(label)")
                #expect(axis.starts.allSatisfy { $0 % multiple == 0 }, "\(label)")
                #expect(axis.tiles.dropLast().allSatisfy { $0.count == min(tile, length) }, "\(label)")
                #expect(axis.tiles.last.map { $0.count >= min(tile, length) && $0.count < min(tile, length) + multiple } ?? false, "\(label)")
                #expect(zip(axis.tiles, axis.tiles.dropFirst()).allSatisfy { $0.upperBound - $1.lowerBound > overlap - multiple }, "\(label)")
                // The fewest tiles: one less could not cover the axis with that overlap.
                let count = axis.tiles.count
                #expect(count == 1 || (count - 2) * (min(tile, length) - overlap) + min(tile, length) < length, "\(label): \(count) tiles")
                let steps = zip(axis.starts, axis.starts.dropFirst()).map { $1 - $0 }
                #expect((steps.max() ?? 0) - (steps.min() ?? 0) <= multiple, "\(label): steps \(steps)")
            }
        }
        #expect(TileAxis(length: 2048, tile: 1024, overlap: 128, multiple: 16).starts == [0, 512, 1024])
        #expect(TileAxis(length: 40_000, tile: 1024, overlap: 128, multiple: 16).tiles.count == 45)
    }

    /// A tile given the means its own pools take gives its own logits exactly; gathering over
    /// the whole picture gives those means; given another picture's means, the logits change.
    @Test func givenPoolsReplaceATilesOwn() throws {
        let segmenter = try Segmenter(encoder: "efficientnet-b0",
                                      weightsFile: SegmentationParityTests.fixture("deeplabv3plus_b0_colours.safetensors"), numClasses: 4)
        let photo = try ImageCodec.decode(contentsOf: Self.packageRoot.appendingPathComponent("samples/coffee.jpg").path)
            .resized(width: 160, height: 128, filter: .bilinear)
        let input = try photo.tensor(mean: segmenter.mean, std: segmenter.std)
        let gathering = GlobalPooling(gatheringRows: 0..<128, columns: 0..<160)
        try segmenter.gatherPools(photo, into: gathering)
        let gathered = GatheredMeans()
        try gathered.add(gathering)
        let means = try gathered.means()
        #expect(means.count == 17, "b0's 16 squeeze-and-excitation blocks and the ASPP image pooling")
        let own = try segmenter.logits(input)
        let given = try segmenter.logits(input, pools: GlobalPooling(given: means))
        expectClose(given, own, "given the picture's own means")
        let other = try ImageCodec.decode(contentsOf: Self.packageRoot.appendingPathComponent("samples/rocket.jpg").path)
            .resized(width: 96, height: 96, filter: .bilinear)
        let elsewhere = GlobalPooling(gatheringRows: 0..<96, columns: 0..<96)
        try segmenter.gatherPools(other, into: elsewhere)
        let otherMeans = GatheredMeans()
        try otherMeans.add(elsewhere)
        let changed = try segmenter.logits(input, pools: GlobalPooling(given: otherMeans.means()))
        #expect(zip(changed.scalars, own.scalars).map { abs($0 - $1) }.max() ?? 0 > 0.01)
        // Too few means for the network's pools: an error, not a crash.
        #expect(throws: TensorError.self) { try segmenter.logits(input, pools: GlobalPooling(given: Array(means.prefix(3)))) }
    }

    /// Means gathered tile by tile over owned regions add up to the means over the picture
    /// (for a tensor at stride s, pixel y stands for input row s·y).
    @Test func gatheredMeansAddUpOwnedRegions() throws {
        let (h, w, c) = (8, 12, 3)
        let values = (0..<(h * w * c)).map { Float(($0 * 37) % 11) - 5 }
        let picture = try Tensor(shape: [1, h, w, c], values: values)
        // Two halves of a 16 x 24 input seen at stride 2: rows 0..<10 and 10..<16.
        let gathered = GatheredMeans()
        for rows in [0..<10, 10..<16] {
            let pools = GlobalPooling(gatheringRows: rows, columns: 0..<24)
            pools.inputSize = (16, 24)
            _ = try pools.mean(of: picture)
            #expect(pools.counts == [(rows == 0..<10 ? 5 : 3) * w])
            try gathered.add(pools)
        }
        let mean = try gathered.means()[0].scalars
        let expected = try globalAveragePool(picture).scalars
        for i in 0..<c { #expect(abs(mean[i] - expected[i]) < 1e-6) }
    }
}

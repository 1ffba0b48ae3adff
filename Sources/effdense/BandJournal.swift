import CZlibShim
import EffCore
import EffDense
import EffImage
import Foundation

/// The bands of a tiled segmentation finished so far, kept beside its mask (`.NAME.mask.tif
/// .effdense-bands`, each band's classes deflated) so that `--resume` continues a killed run of
/// one huge picture where it stopped. Its first line says what it belongs to — the picture, its
/// size, the tiling, the model's files — and a journal of anything else is started over. The
/// journal is removed when the mask is complete or the run fails; a killed run leaves it.
final class BandJournal: @unchecked Sendable {
    let path: String
    private let identity: String
    private var handle: FileHandle?
    /// The rows the journal held when the run started (replayed, not appended again).
    private(set) var resumedRows = 0..<0

    init(for target: String, identity: String) {
        path = PathText.join(PathText.parent(target), "." + PathText.lastComponent(target) + ".effdense-bands")
        self.identity = identity.replacingOccurrences(of: "\n", with: " ")
    }

    /// Opens the journal: with `resume`, keeps the bands an earlier run of the same picture,
    /// tiling and model finished (whole records only) and returns them; else starts it over.
    func open(resume: Bool) throws -> [TiledSegmenter.Band] {
        var bands: [TiledSegmenter.Band] = []
        var end = 0
        if resume, let data = FileManager.default.contents(atPath: path), let newline = data.firstIndex(of: 10),
           String(decoding: data[data.startIndex..<newline], as: UTF8.self) == identity {
            var offset = newline + 1
            end = offset
            func field(_ at: Int) -> Int { Int(Int64(littleEndian: data[at..<(at + 8)].withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })) }
            while offset + 32 <= data.endIndex {
                let (start, count, rawLength, length) = (field(offset), field(offset + 8), field(offset + 16), field(offset + 24))
                guard start >= 0, count > 0, rawLength > 0, rawLength <= 1 << 34, length > 0, length <= data.endIndex - offset - 32,
                      start == (bands.last?.rows.upperBound ?? 0) else { break }
                var mask = [UInt8](repeating: 0, count: rawLength)
                var produced = uLongf(rawLength)
                let status = mask.withUnsafeMutableBufferPointer { out in
                    data[(offset + 32)..<(offset + 32 + length)].withUnsafeBytes { source in
                        uncompress(out.baseAddress, &produced, source.bindMemory(to: Bytef.self).baseAddress, uLong(length))
                    }
                }
                guard status == Z_OK, Int(produced) == rawLength else { break }
                bands.append(TiledSegmenter.Band(rows: start..<(start + count), mask: mask))
                offset += 32 + length
                end = offset
            }
        }
        if bands.isEmpty {
            try AtomicFile.write(Data((identity + "\n").utf8), to: path)
            end = identity.utf8.count + 1
        }
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw ImageError(.unwritable, path, "cannot write the resume journal")
        }
        try handle.truncate(atOffset: UInt64(end))
        try handle.seekToEnd()
        self.handle = handle
        resumedRows = 0..<(bands.last?.rows.upperBound ?? 0)
        return bands
    }

    /// Records a finished band (one the journal already held is not written again).
    func append(_ band: TiledSegmenter.Band) throws {
        guard let handle, band.rows.lowerBound >= resumedRows.upperBound else { return }
        var compressed = [UInt8](repeating: 0, count: Int(compressBound(uLong(band.mask.count))))
        var length = uLongf(compressed.count)
        let status = compressed.withUnsafeMutableBufferPointer { out in
            band.mask.withUnsafeBufferPointer { compress2(out.baseAddress, &length, $0.baseAddress, uLong($0.count), 1) }
        }
        guard status == Z_OK else { throw ImageError(.unwritable, path, "cannot compress a band for the resume journal") }
        var record = Data()
        for value in [band.rows.lowerBound, band.rows.count, band.mask.count, Int(length)] {
            withUnsafeBytes(of: Int64(value).littleEndian) { record.append(contentsOf: $0) }
        }
        record.append(contentsOf: compressed[0..<Int(length)])
        try handle.write(contentsOf: record)
    }

    /// Removes the journal (the mask is complete, or the run failed).
    func remove() {
        try? handle?.close()
        handle = nil
        unlink(path)
    }
}

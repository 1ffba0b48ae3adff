// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "effdense",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EffCore", targets: ["EffCore"]),
        .library(name: "EffImage", targets: ["EffImage"]),
        .library(name: "EffWeights", targets: ["EffWeights"]),
        .library(name: "EffDense", targets: ["EffDense"]),
        .library(name: "EffBatch", targets: ["EffBatch"]),
        .library(name: "EffEval", targets: ["EffEval"]),
        .library(name: "EffVideo", targets: ["EffVideo"]),
        .executable(name: "effdense", targets: ["effdense"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Native libraries, found through pkg-config.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CFreeType", pkgConfig: "freetype2", providers: [.apt(["libfreetype-dev"])]),
        // zlib's crc32 checks torch.save zip entries (ZIPFoundation's own CRC is 5x slower); named apart from ZIPFoundation's internal CZlib module.
        .systemLibrary(name: "CZlibShim", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // More picture formats: BMP and GIF (first frame) through stb_image, WebP, TIFF.
        .systemLibrary(name: "CSTB", pkgConfig: "stb", providers: [.apt(["libstb-dev"])]),
        .systemLibrary(name: "CWebP", pkgConfig: "libwebp", providers: [.apt(["libwebp-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4", providers: [.apt(["libtiff-dev"])]),
        // Whole-slide images in vendor formats (Aperio SVS, Hamamatsu NDPI, MRXS...), read region by region.
        .systemLibrary(name: "COpenSlide", pkgConfig: "openslide", providers: [.apt(["libopenslide-dev"])]),
        // Video files through FFmpeg's libraries (containers, codecs, pixel format conversion).
        .systemLibrary(name: "CAVFormat", pkgConfig: "libavformat", providers: [.apt(["libavformat-dev"])]),
        .systemLibrary(name: "CAVCodec", pkgConfig: "libavcodec", providers: [.apt(["libavcodec-dev"])]),
        .systemLibrary(name: "CAVUtil", pkgConfig: "libavutil", providers: [.apt(["libavutil-dev"])]),
        .systemLibrary(name: "CSWScale", pkgConfig: "libswscale", providers: [.apt(["libswscale-dev"])]),
        // C shim: FFmpeg's status codes and log come back as one-line messages.
        .target(name: "CVideoCodecs", dependencies: ["CAVFormat", "CAVCodec", "CAVUtil", "CSWScale"]),
        // C shim: libpng / libjpeg errors (longjmp) come back as return codes.
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG", "CSTB", "CWebP", "CTIFF"]),

        // Hot kernels in C: AVX-512 / AVX2+FMA versions chosen at run time, portable ones (OpenBLAS for the GEMM) otherwise.
        .target(name: "CKernels", dependencies: ["CBLAS"]),
        // Process-level C: the temporary files in flight, removed by SIGINT / SIGTERM handlers.
        .target(name: "CProcessShim"),
        .target(name: "EffCore", dependencies: ["CBLAS", "CKernels", "CProcessShim"]),
        .target(name: "EffImage", dependencies: ["EffCore", "CImageCodecs", "CFreeType", "COpenSlide"]),
        .target(
            name: "EffWeights",
            dependencies: [
                "EffCore", "CZlibShim",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(name: "EffDense", dependencies: ["EffCore", "EffWeights", "EffImage", .product(name: "Yams", package: "Yams")]),
        // Videos: frames decoded as RGBImage, annotated / mask videos written (temporary file + rename).
        .target(name: "EffVideo", dependencies: ["EffImage", "EffCore", "CVideoCodecs"]),
        // Many pictures: inputs (folders, globs, lists), shards, the overlapped decode → network → write run.
        .target(name: "EffBatch", dependencies: ["EffImage", "EffCore"]),
        // Checking results: COCO detection metrics exactly as pycocotools, segmentation IoU as smp / mmseg.
        .target(name: "EffEval"),
        .executableTarget(
            name: "effdense",
            dependencies: [
                "EffCore", "EffImage", "EffWeights", "EffDense", "EffBatch", "EffEval", "EffVideo", "CZlibShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "EffCoreTests", dependencies: ["EffCore", "CKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EffImageTests", dependencies: ["EffImage", "EffCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EffDenseTests", dependencies: ["EffDense", "EffCore", "EffWeights", "EffImage"], resources: [.copy("Fixtures")]),
        .testTarget(name: "effdenseCLITests", dependencies: ["effdense", "EffCore", "EffImage", "EffWeights", "EffDense", "EffVideo"]),
        .testTarget(name: "EffBatchTests", dependencies: ["EffBatch", "EffImage"]),
        .testTarget(name: "EffVideoTests", dependencies: ["EffVideo", "EffImage"]),
        .testTarget(name: "EffEvalTests", dependencies: ["EffEval", "EffImage"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EffWeightsTests", dependencies: ["EffWeights", "EffCore"], resources: [.copy("Fixtures")]),
    ]
)

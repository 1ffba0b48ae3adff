/// A checkpoint that cannot be read or bound, naming the file, the key and what was expected.
public struct WeightsError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The file cannot be opened or read.
        case unreadable
        /// Not a format effdense knows (safetensors, torch.save zip or legacy).
        case unknownFormat
        /// Structurally broken: truncated, offsets out of range, sizes that lie, bad JSON.
        case corrupt
        /// A floating-point tensor holds NaN or an infinity.
        case nonFinite
        /// A dtype effdense cannot convert.
        case unsupportedDType
        /// The pickle names a global outside the allowlist (never executed).
        case disallowedGlobal
        /// A parameter the model needs is absent.
        case missingKey
        /// A parameter has another shape than the model needs.
        case shapeMismatch
        /// The file holds parameters the model does not use.
        case unusedKeys
        /// Downloading or verifying a checkpoint failed.
        case download
        /// Writing an output failed.
        case unwritable
    }

    public let kind: Kind
    /// The checkpoint file (or URL) concerned.
    public let file: String
    public let problem: String

    public init(_ kind: Kind, _ file: String, _ problem: String) {
        self.kind = kind
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }
}

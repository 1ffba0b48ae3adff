import EffDense
import EffWeights

/// The model a command runs: the one its checkpoint holds (ModelRecognition) unless a flag
/// names one, and a one-line error naming the file's model when the flag contradicts it.
enum ModelChoice {
    /// `flagged` (a --model / --encoder value) checked against what `store` holds, or the
    /// checkpoint's own model when no flag was given. `expected` picks the recognised kind;
    /// `sameStructure` says whether a flag and the file's model have the same shapes.
    static func resolve(flagged: String?, flag: String, store: WeightStore, what: String,
                        recognisedName: (RecognisedModel) -> String?, sameStructure: (String, String) -> Bool) throws -> String? {
        guard let recognised = ModelRecognition.recognise(store) else { return flagged }
        guard let name = recognisedName(recognised) else {
            throw WeightsError(.shapeMismatch, store.file, "this checkpoint holds \(recognised), not \(what)")
        }
        guard let flagged else { return name }
        guard sameStructure(flagged, name) else {
            throw WeightsError(.shapeMismatch, store.file, "this checkpoint holds \(recognised), not \(flagged): drop \(flag) or pass \(flag) \(name)")
        }
        return flagged
    }
}

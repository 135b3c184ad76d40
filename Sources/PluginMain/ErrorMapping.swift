import CNI
import Netfilter
import Netlink
import RandSNATCore

/// The one place where errors of the lower layers become CNI error codes.
enum ErrorMapping {
    static func cniError(_ error: any Error) -> CNIError {
        switch error {
        case let error as CNIError:
            return error
        case let error as ConfigError:
            let code: CNIError.Code = error.isDecodingFault ? .decodingFailure : error.isUnsupportedField ? .unsupportedField : .invalidConfig
            return CNIError(code, error.description)
        case let error as NetfilterError:
            return CNIError(error.isTransient ? .tryAgainLater : .internal, error.description)
        case let error as NetlinkError:
            return CNIError(error.isTimeout ? .tryAgainLater : .internal, error.description)
        case let error as DelegatedPluginError:
            switch error {
            case .unreadableResult, .oversizedResult: return CNIError(.decodingFailure, error.description, details: error.details)
            case .notFound, .noResult, .failed, .cannotRun: return CNIError(.internal, error.description, details: error.details)
            }
        case let error as NetnsRefusal:
            switch error {
            case .missing: return CNIError(.invalidEnvironment, error.description, details: error.details)
            case .ownNamespace: return CNIError(.invalidNetworkNamespace, error.description, details: error.details)
            }
        case let error as NodeNotReady:
            return CNIError(.pluginNotAvailable, "randsnat cannot serve ADD on this node", details: error.description)
        case let error as GCFailure:
            // The steps' own code when they agree (a lock held too long everywhere is still 11).
            let codes = Set(error.steps.map { cniError($0.error).code })
            return CNIError(codes.count == 1 ? codes.first! : .internal, error.description)
        case let error as PodsWithoutSNAT:
            return CNIError(.pluginLimitedConnectivity, "running pods of this network have no SNAT until randsnat's agent repairs it",
                            details: error.description)
        case let error as CheckFailure:
            return CNIError(.internal, error.description)
        default:
            return CNIError(.internal, "\(error)")
        }
    }
}

"""Exception types: every user-facing failure is a TdmR1Error subclass with a one-line message."""


class TdmR1Error(Exception):
    """Base class; the CLI prints these as one clear line instead of a traceback."""


class ConfigError(TdmR1Error):
    """A config file or override is malformed: unknown key, wrong type, bad value."""


class DataError(TdmR1Error):
    """Input data (images, prompt files, metadata, folders) does not follow the expected format."""


class RewardError(TdmR1Error):
    """A reward raised, timed out or returned non-finite / mis-shaped scores."""


class CheckpointError(TdmR1Error):
    """A checkpoint is missing files, corrupt, or does not match its config."""


class TrainingDiverged(TdmR1Error):
    """A loss became NaN or infinite: the run stops, its last checkpoint (all finite) kept."""


class Interrupted(TdmR1Error):
    """The user stopped a run (Ctrl-C / SIGINT): exit code 130, the message says where it stopped."""

import pytest

from rsviz import errors


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (errors.RasterReadError, OSError),
        (errors.BandCountError, ValueError),
        (errors.CRSError, ValueError),
        (errors.GridMismatchError, ValueError),
        (errors.ExtentError, ValueError),
        (errors.ChecksumError, ValueError),
        (errors.DataMissingError, FileNotFoundError),
        (errors.UnknownNameError, KeyError),
        (errors.ModelInputError, ValueError),
        (errors.GeometryTypeError, ValueError),
        (errors.ModelFolderError, ValueError),
        (errors.OutputPathError, OSError),
    ],
)
def test_subclasses_inherit_root_and_builtin(cls, builtin):
    assert issubclass(cls, errors.RsvizError)
    assert issubclass(cls, builtin)
    with pytest.raises(builtin):
        raise cls("x")


def test_unknown_name_lists_valid_names_readably():
    e = errors.unknown_name("model", "nope", ["b", "a"])
    assert str(e) == "unknown model 'nope'; valid names: a, b"

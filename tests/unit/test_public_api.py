import async_refimport


def test_all_is_sorted_and_complete() -> None:
    names = async_refimport.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(async_refimport, name), name
    public = {n for n in vars(async_refimport) if not n.startswith("_")}
    # Every public attribute is either exported or a submodule.
    assert public - set(names) <= {"emulator"}

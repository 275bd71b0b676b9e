from routing.assignment import Load, choose_handler
from routing.catalogue import Catalogue, Handler


def test_fewest_open_then_fewest_total_then_roster_order() -> None:
    catalogue = Catalogue.load()
    dept = catalogue.departments["roads"]
    roster = (
        Handler(
            handler_id="a",
            name="가",
            office_phone="032-560-0001",
            areas=("청라1동",),
            capacity=5,
            on_duty=True,
        ),
        Handler(
            handler_id="b",
            name="나",
            office_phone="032-560-0002",
            areas=("청라1동",),
            capacity=5,
            on_duty=True,
        ),
    )
    assert choose_handler(dept, roster, area="청라1동", loads={}).handler_id == "a"
    loads = {"a": Load(open=1, total=1)}
    assert choose_handler(dept, roster, area="청라1동", loads=loads).handler_id == "b"
    loads = {"a": Load(open=0, total=3), "b": Load(open=0, total=2)}
    assert choose_handler(dept, roster, area="청라1동", loads=loads).handler_id == "b"


def test_off_duty_full_or_out_of_area_falls_back_to_the_supervisor() -> None:
    catalogue = Catalogue.load()
    dept = catalogue.departments["roads"]
    roster = (
        Handler(
            handler_id="a",
            name="가",
            office_phone="032-560-0001",
            areas=("청라1동",),
            capacity=1,
            on_duty=True,
        ),
        Handler(
            handler_id="b",
            name="나",
            office_phone="032-560-0002",
            areas=("청라1동",),
            capacity=5,
            on_duty=False,
        ),
    )
    assert (
        choose_handler(dept, roster, area="청라1동", loads={"a": Load(open=1)}) == dept.supervisor
    )
    assert choose_handler(dept, roster, area="연희동", loads={}) == dept.supervisor


def test_every_area_of_every_department_has_an_on_duty_handler() -> None:
    catalogue = Catalogue.load()
    areas = {a for roster in catalogue.rosters.values() for h in roster for a in h.areas}
    for code, dept in catalogue.departments.items():
        for area in areas:
            chosen = choose_handler(dept, catalogue.rosters[code], area=area, loads={})
            assert chosen != dept.supervisor, (code, area)


def test_catalogue_has_sixteen_departments_and_unique_service_codes() -> None:
    catalogue = Catalogue.load()
    assert len(catalogue.departments) == 16
    codes = [c for d in catalogue.departments.values() for c in d.service_codes]
    assert len(codes) == len(set(codes))

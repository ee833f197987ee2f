from vectorizer_operator import naming


def test_child_names_derive_from_the_cluster_name() -> None:
    assert naming.statefulset("vz") == "vz"
    assert naming.headless_service("vz") == "vz-headless"
    assert (naming.rw_service("vz"), naming.ro_service("vz"), naming.r_service("vz")) == (
        "vz-rw",
        "vz-ro",
        "vz-r",
    )
    assert naming.configmap("vz") == "vz-config"
    assert naming.pod("vz", 2) == "vz-2"
    assert naming.pvc("vz", 2) == "data-vz-2"


def test_ordinal_only_for_our_pods() -> None:
    assert naming.ordinal("vz", "vz-0") == 0
    assert naming.ordinal("vz", "vz-12") == 12
    assert naming.ordinal("vz", "vz-01") is None
    assert naming.ordinal("vz", "vzz-1") is None
    assert naming.ordinal("vz", "vz-a") is None
    assert naming.ordinal("vz-x", "vz-1") is None


def test_urls_use_the_headless_service_dns_name() -> None:
    url = naming.advertise_url("vz", "db", "vz-1", "cluster.local")
    assert url == "http://vz-1.vz-headless.db.svc.cluster.local:15002"
    template = naming.advertise_url_template("vz", "db", "cluster.local", tls=False)
    assert template == "http://$(POD_NAME).vz-headless.db.svc.cluster.local:15002"
    tls = naming.advertise_url("vz", "db", "vz-1", "cluster.local", tls=True)
    assert tls == "https://vz-1.vz-headless.db.svc.cluster.local:15002"


def test_server_names_cover_every_service_and_pod() -> None:
    names = naming.server_dns_names("vz", "db", "cluster.local")
    for service in ("vz-rw", "vz-ro", "vz-r", "vz-headless"):
        assert {service, f"{service}.db", f"{service}.db.svc"} <= set(names)
        assert f"{service}.db.svc.cluster.local" in names
    assert "*.vz-headless.db.svc.cluster.local" in names  # every pod, however many


def test_longest_name_keeps_every_derived_name_a_dns_label() -> None:
    name = "a" * naming.MAX_NAME_LENGTH
    revision_label = f"{name}-{'x' * 10}"
    for derived in (naming.headless_service(name), naming.pod(name, 31), revision_label):
        assert len(derived) <= 63


def test_selectors() -> None:
    assert naming.label_selector("vz") == "vectorizer.io/cluster=vz"
    assert naming.role_selector("vz", "primary") == {
        "vectorizer.io/cluster": "vz",
        "vectorizer.io/role": "primary",
    }
    assert naming.selector_labels("vz").items() <= naming.common_labels("vz").items()

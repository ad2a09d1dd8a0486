from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    """The benchmarks: `manage.py bench` and `bench_monitoring`, and the floor they measure against (no models).

    Not `BenchConfig`: that name is the dataclass of what `manage.py bench` is asked to do.
    """

    name = "bench"
    verbose_name = "Benchmarks"

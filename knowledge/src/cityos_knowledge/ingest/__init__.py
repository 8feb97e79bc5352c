"""The observations consumer: applies ``acquisition.observations.v1`` to the stores."""

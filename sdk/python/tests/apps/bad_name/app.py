"""An action name the manifest could not declare: the build fails, naming it."""

import floom


@floom.action("Bad Name")
def bad(inputs: dict) -> None:
    return None

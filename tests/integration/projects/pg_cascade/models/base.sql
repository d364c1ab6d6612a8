select a.id, a.root as root_a, b.root as root_b
from {{ ref('root_a') }} as a
join {{ ref('root_b') }} as b on a.id = b.id
